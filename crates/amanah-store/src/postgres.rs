//! The PostgreSQL backend, for deployments that run several `amanah serve` processes on one
//! database (and, on paper, PostgreSQL-compatible distributed SQL: see ARCHITECTURE.md).
//!
//! - One writer task per process owns a write connection and commits queued jobs in one
//!   transaction (group commit), each job in its own savepoint, like the SQLite backend.
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

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use amanah_core::audit::{canonical_bytes, head_mac, AuditDraft, AuditRecord};
use amanah_crypto::audit::{AuditKey, GENESIS};
use amanah_crypto::WrappedKey;
use async_trait::async_trait;
use tokio::sync::oneshot;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Config, NoTls, Row, Statement, Transaction};

use crate::rows::{self, to_hash};
use crate::sql::{self, Sql};
use crate::{
    ApiKeyRecord, BreachRecord, BulkInsert, ConsentRecord, ConsentSelection, DeidentifiedRecord,
    DisclosureRecord, DisclosureStep, FieldWrite, HoldRecord, NewSubject, PolicyRecord,
    RelationRecord, RequestRecord, RequestTransition, RestrictionRecord, Store, StoreError,
    StoreResult, StoredSubject, SubjectUpdate, UniqueConflict,
};

mod accountability;
mod rights;

/// Ordered migrations: `(version, SQL)`. A database whose `schema_version` is above the last
/// one here was written by a newer Amanah and is refused.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, SCHEMA_V1),
    (2, SCHEMA_V2),
    (3, rights::SCHEMA_V3),
    (4, accountability::SCHEMA_V4),
    (5, SCHEMA_V5),
    (6, SCHEMA_V6),
];
/// Every API key names the person it was issued to (four eyes count people).
const SCHEMA_V5: &str = "ALTER TABLE api_keys ADD COLUMN holder TEXT;";
/// Key of the advisory lock that serializes migrations of concurrently starting processes.
const MIGRATION_LOCK: i64 = 0x616d_616e_6168; // "amanah"
const MAX_BATCH: usize = 256;
const READERS: usize = 4;
/// Attempts of one write transaction that hits 40001 / 40P01.
const MAX_ATTEMPTS: u32 = 8;

const SCHEMA_V1: &str = r#"
CREATE TABLE subjects (
    id TEXT PRIMARY KEY,
    kek_id TEXT NOT NULL,
    key_version BIGINT NOT NULL,
    wrapped_key BYTEA NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE TABLE subject_fields (
    subject_id TEXT NOT NULL REFERENCES subjects(id) ON DELETE CASCADE,
    category TEXT NOT NULL,
    ciphertext BYTEA NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (subject_id, category)
);
CREATE TABLE blind_index (
    category TEXT NOT NULL,
    term BYTEA NOT NULL,
    subject_id TEXT NOT NULL REFERENCES subjects(id) ON DELETE CASCADE,
    PRIMARY KEY (category, term, subject_id)
);
CREATE INDEX blind_index_by_subject ON blind_index(subject_id, category);
CREATE TABLE unique_index (
    category TEXT NOT NULL,
    term BYTEA NOT NULL,
    subject_id TEXT NOT NULL REFERENCES subjects(id) ON DELETE CASCADE,
    PRIMARY KEY (category, term)
);
CREATE INDEX unique_index_by_subject ON unique_index(subject_id, category);
CREATE TABLE subject_purposes (
    subject_id TEXT NOT NULL REFERENCES subjects(id) ON DELETE CASCADE,
    purpose TEXT NOT NULL,
    collected_at BIGINT NOT NULL,
    PRIMARY KEY (subject_id, purpose)
);
CREATE TABLE audit_log (
    seq BIGINT PRIMARY KEY,
    at BIGINT NOT NULL,
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
    hash BYTEA NOT NULL
);
CREATE INDEX audit_by_subject ON audit_log(subject_id, seq);
-- One row, present from the start: every write transaction locks it. seq 0 is the empty log.
CREATE TABLE audit_head (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq BIGINT NOT NULL,
    hash BYTEA NOT NULL,
    mac BYTEA NOT NULL
);
INSERT INTO audit_head (id, seq, hash, mac)
    VALUES (1, 0, decode(repeat('00', 32), 'hex'), decode(repeat('00', 32), 'hex'));
CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE TABLE policy_versions (
    seq BIGINT PRIMARY KEY,
    version TEXT NOT NULL,
    source TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    applied_at BIGINT NOT NULL
);
"#;

const SCHEMA_V2: &str = r#"
CREATE TABLE consents (
    seq BIGINT PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    subject_id TEXT NOT NULL REFERENCES subjects(id) ON DELETE CASCADE,
    purpose TEXT NOT NULL,
    purpose_version TEXT NOT NULL,
    policy_version TEXT NOT NULL,
    granted BOOLEAN NOT NULL,
    given_by TEXT NOT NULL,
    capture_channel TEXT NOT NULL,
    contact_channels TEXT NOT NULL,
    guardian_subject_id TEXT REFERENCES subjects(id) ON DELETE SET NULL,
    guardian_details BYTEA,
    evidence BYTEA,
    evidence_sha256 TEXT,
    recorded_by TEXT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX consents_by_subject ON consents(subject_id, seq);
CREATE INDEX consents_by_guardian ON consents(guardian_subject_id);
CREATE TABLE consent_current (
    purpose TEXT NOT NULL,
    subject_id TEXT NOT NULL REFERENCES subjects(id) ON DELETE CASCADE,
    consent_seq BIGINT NOT NULL,
    PRIMARY KEY (purpose, subject_id)
);
CREATE INDEX consent_current_by_subject ON consent_current(subject_id);
CREATE TABLE relations (
    id TEXT PRIMARY KEY,
    subject_id TEXT NOT NULL REFERENCES subjects(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    related_subject_id TEXT NOT NULL REFERENCES subjects(id) ON DELETE CASCADE,
    evidence BYTEA,
    evidence_sha256 TEXT,
    recorded_by TEXT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX relations_by_subject ON relations(subject_id);
CREATE INDEX relations_by_related ON relations(related_subject_id);
"#;

/// Schema 6: comma-joined lists become JSON arrays holding exactly the list that schema 5 read
/// back (`string_to_array('', ',')` is the empty array, as the old reader's empty list), so
/// every old audit entry still matches its MAC. The genesis head is signed in `migrate`.
const SCHEMA_V6: &str = r#"
UPDATE audit_log SET fields = to_json(string_to_array(fields, ','))::text;
UPDATE disclosures SET categories = to_json(array_remove(string_to_array(categories, ','), ''))::text;
UPDATE breaches SET categories = to_json(array_remove(string_to_array(categories, ','), ''))::text;
"#;

/// The newest schema version this binary understands.
pub const PG_SCHEMA_VERSION: i64 = 6;

/// A database error as the store reports it: SQLSTATE and message, never the detail.
pub(crate) fn backend(e: tokio_postgres::Error) -> StoreError {
    match e.as_db_error() {
        Some(db) => StoreError::Backend(format!("postgres {}: {}", db.code().code(), db.message())),
        None if e.is_closed() => StoreError::Backend("the postgres connection is closed".into()),
        None => StoreError::Backend(format!("postgres: {e}")),
    }
}

/// Serialization failure or deadlock: the transaction can be run again as a whole.
pub fn is_retryable(code: &SqlState) -> bool {
    *code == SqlState::T_R_SERIALIZATION_FAILURE || *code == SqlState::T_R_DEADLOCK_DETECTED
}

fn retryable(e: &tokio_postgres::Error) -> bool {
    e.code().is_some_and(is_retryable)
}

fn channel_closed<T>(_: T) -> StoreError {
    StoreError::Backend("the storage task has stopped".into())
}

fn limit_i64(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
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

/// Parses a `postgres://` URL (or key=value string). The error never quotes the input.
pub fn parse_url(url: &str) -> StoreResult<Config> {
    url.parse::<Config>()
        .map_err(|_| StoreError::Backend("invalid PostgreSQL connection URL".into()))
}

async fn connect(config: &Config) -> StoreResult<Client> {
    let (client, connection) = config.connect(NoTls).await.map_err(|e| {
        StoreError::Backend(format!(
            "cannot connect to {}: {}",
            describe(config),
            backend(e)
        ))
    })?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %backend(e), "postgres connection ended");
        }
    });
    Ok(client)
}

/// Prepared statements of one connection, by SQL text.
#[derive(Default)]
struct Stmts(HashMap<&'static str, Statement>);

impl Stmts {
    async fn get(&mut self, tx: &Transaction<'_>, sql: &'static str) -> Result<Statement, Tx> {
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
enum Tx {
    Store(StoreError),
    Db(tokio_postgres::Error),
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

/// One write, as data, so that a retried transaction applies it again unchanged.
enum Op {
    InsertSubject(NewSubject, AuditDraft),
    UpdateSubject(SubjectUpdate, AuditDraft),
    InsertConsent(ConsentRecord, AuditDraft),
    InsertRelation(RelationRecord, AuditDraft),
    Append(Vec<AuditDraft>),
    InsertApiKey(ApiKeyRecord, AuditDraft),
    RevokeApiKey(String, i64, AuditDraft),
    InsertPolicy(PolicyRecord, AuditDraft),
    // Rights (applied by `rights::apply`).
    EraseSubject {
        id: String,
        at: i64,
        cause: String,
        audit: AuditDraft,
    },
    SetRestriction {
        id: String,
        restriction: Option<RestrictionRecord>,
        audit: AuditDraft,
    },
    InsertHold(HoldRecord, AuditDraft),
    ReleaseHold {
        subject: String,
        hold_id: String,
        at: i64,
        audit: AuditDraft,
    },
    InsertRequest(RequestRecord, AuditDraft),
    UpdateRequest(RequestTransition, AuditDraft),
    EndRelationship {
        id: String,
        at: i64,
        audit: AuditDraft,
    },
    EraseCategories {
        id: String,
        categories: Vec<String>,
        expired: Vec<String>,
        audit: AuditDraft,
    },
    Deidentify {
        id: String,
        at: i64,
        record: DeidentifiedRecord,
        audit: AuditDraft,
    },
    // Accountability (applied by `accountability::apply`).
    InsertDisclosure(DisclosureRecord, AuditDraft),
    StepDisclosure(DisclosureStep, AuditDraft),
    RecordRelease {
        id: String,
        at: i64,
        audit: Vec<AuditDraft>,
    },
    InsertBreach(BreachRecord, AuditDraft),
    MarkBreachNotified {
        id: String,
        by: String,
        at: i64,
        audit: AuditDraft,
    },
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
    config: Config,
    writer: flume::Sender<WriteJob>,
    readers: Vec<RwLock<Arc<ReadConn>>>,
    next: AtomicUsize,
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
        let config = parse_url(url)?;
        let mut client = connect(&config).await?;
        migrate(&mut client, &audit_key).await?;
        let mut readers = Vec::with_capacity(READERS);
        for _ in 0..READERS {
            readers.push(RwLock::new(Arc::new(ReadConn {
                client: connect(&config).await?,
                stmts: Mutex::default(),
            })));
        }
        let (wtx, wrx) = flume::unbounded::<WriteJob>();
        tokio::spawn(writer_loop(config.clone(), client, audit_key, wrx));
        Ok(PgStore {
            inner: Arc::new(Inner {
                config,
                writer: wtx,
                readers,
                next: AtomicUsize::new(0),
            }),
        })
    }

    /// Where the store is, without the password.
    pub fn describe(&self) -> String {
        describe(&self.inner.config)
    }

    async fn write(&self, op: Op) -> StoreResult<AuditRecord> {
        self.write_many(op)
            .await?
            .pop()
            .ok_or_else(|| StoreError::Backend("no audit record".into()))
    }

    async fn write_many(&self, op: Op) -> StoreResult<Vec<AuditRecord>> {
        let (reply, rx) = oneshot::channel();
        self.inner
            .writer
            .send_async(WriteJob::One {
                op: Box::new(op),
                reply,
            })
            .await
            .map_err(channel_closed)?;
        rx.await.map_err(channel_closed)?
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
            client: connect(&self.inner.config).await?,
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

    /// Every row of a shared query, each read by `map`.
    async fn all<T>(
        &self,
        q: Sql,
        params: &[&(dyn ToSql + Sync)],
        map: impl Fn(&Row) -> StoreResult<T>,
    ) -> StoreResult<Vec<T>> {
        self.query(q.pg, params).await?.iter().map(map).collect()
    }

    /// The first row of a shared query, read by `map`.
    async fn first<T>(
        &self,
        q: Sql,
        params: &[&(dyn ToSql + Sync)],
        map: impl Fn(&Row) -> StoreResult<T>,
    ) -> StoreResult<Option<T>> {
        self.query(q.pg, params).await?.first().map(map).transpose()
    }
}

async fn migrate(client: &mut Client, audit_key: &AuditKey) -> StoreResult<()> {
    let tx = client.transaction().await.map_err(backend)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(backend)?;
    tx.batch_execute(
        "SET LOCAL client_min_messages = warning;
         CREATE TABLE IF NOT EXISTS schema_version (
             version BIGINT PRIMARY KEY,
             applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
         )",
    )
    .await
    .map_err(backend)?;
    let found: i64 = tx
        .query_one("SELECT COALESCE(MAX(version), 0) FROM schema_version", &[])
        .await
        .map_err(backend)?
        .get(0);
    if found > PG_SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            found,
            supported: PG_SCHEMA_VERSION,
        });
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > found) {
        tx.batch_execute(sql).await.map_err(backend)?;
        if *version == 6 {
            recover_legacy_fields(&tx, audit_key).await?;
            // The head row of an empty log, written unsigned by schema 1, gets its MAC: from
            // now on a head that does not verify stops every write, `seq` 0 included.
            let mac = head_mac(audit_key, 0, &GENESIS);
            tx.execute(
                "UPDATE audit_head SET hash = $1, mac = $2
                 WHERE id = 1 AND seq = 0 AND NOT EXISTS (SELECT 1 FROM audit_log)",
                &[&&GENESIS[..], &&mac[..]],
            )
            .await
            .map_err(backend)?;
        }
        tx.execute(
            "INSERT INTO schema_version (version) VALUES ($1)",
            &[version],
        )
        .await
        .map_err(backend)?;
        tracing::info!(version, "applied a PostgreSQL schema migration");
    }
    tx.commit().await.map_err(backend)
}

/// Schema 6: entries that schema 5 could not read back (a comma inside a field name) get the
/// list their MAC confirms (see `lists::recover_fields`). Streams the entries with more or
/// fewer than one field, with the hash of the entry before each.
async fn recover_legacy_fields(tx: &Transaction<'_>, audit_key: &AuditKey) -> StoreResult<()> {
    use futures_util::StreamExt;
    let rows = tx
        .query_raw(
            "SELECT * FROM (
                 SELECT seq, at, actor, role, action, purpose, basis, outcome, reason, subject_id,
                        fields, policy_version, hash,
                        LAG(seq) OVER (ORDER BY seq), LAG(hash) OVER (ORDER BY seq)
                 FROM audit_log) t
             WHERE json_array_length(fields::json) <> 1 ORDER BY seq",
            std::iter::empty::<i64>(),
        )
        .await
        .map_err(backend)?;
    futures_util::pin_mut!(rows);
    let mut recovered = Vec::new();
    while let Some(row) = rows.next().await {
        let row = row.map_err(backend)?;
        let record = rows::audit(&row)?;
        let previous = match row.try_get::<_, Option<i64>>(13).map_err(backend)? {
            None if record.seq == 1 => GENESIS,
            Some(p) if p as u64 + 1 == record.seq => {
                to_hash(row.try_get::<_, &[u8]>(14).map_err(backend)?)
            }
            _ => continue,
        };
        if let Some(fields) = crate::lists::recover_fields(audit_key, &record, &previous) {
            recovered.push((record.seq as i64, crate::lists::encode(&fields)));
        }
    }
    for (seq, fields) in recovered {
        tracing::info!(seq, "audit entry's field list recovered from its MAC");
        tx.execute(
            "UPDATE audit_log SET fields = $1 WHERE seq = $2",
            &[&fields, &seq],
        )
        .await
        .map_err(backend)?;
    }
    Ok(())
}

async fn writer_loop(
    config: Config,
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
            match connect(&config).await {
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

type Reply = oneshot::Sender<StoreResult<Vec<AuditRecord>>>;

/// Commits a batch of small jobs in one transaction (retried whole on serialization failures).
async fn run_jobs(
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
async fn run_bulk(
    client: &mut Client,
    stmts: &mut Stmts,
    key: &AuditKey,
    mut input: tokio::sync::mpsc::Receiver<BulkInsert>,
) -> StoreResult<u64> {
    let outcome = async {
        let tx = client.transaction().await?;
        let mut chain = lock_head(&tx, key).await?;
        let start = chain.seq;
        let mut index = 0u64;
        let mut conflicts = Vec::new();
        let mut committed = false;
        while let Some(message) = input.recv().await {
            match message {
                BulkInsert::Subjects(subjects) => {
                    for (subject, audit) in subjects {
                        for category in insert_new_subject(&tx, stmts, &subject).await? {
                            conflicts.push(UniqueConflict { index, category });
                        }
                        append(&tx, stmts, &mut chain, &audit).await?;
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
        Err(Tx::Db(e)) => Err(backend(e)),
        Err(Tx::Store(e)) => Err(e),
    }
}

type BatchResults = Vec<StoreResult<Vec<AuditRecord>>>;

async fn run_with_retries(
    client: &mut Client,
    stmts: &mut Stmts,
    key: &AuditKey,
    ops: &[&Op],
) -> StoreResult<BatchResults> {
    let mut attempt = 1;
    loop {
        match run_batch(client, stmts, key, ops).await {
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
            Err(Tx::Db(e)) => return Err(backend(e)),
            Err(Tx::Store(e)) => return Err(e),
        }
    }
}

/// Exponential backoff with jitter: 2, 4, 8... ms (capped), plus up to as much again.
fn backoff(attempt: u32) -> Duration {
    let base = 1u64 << attempt.min(7);
    let jitter = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::from(d.subsec_nanos()) % (base * 1000))
        .unwrap_or(0);
    Duration::from_micros(base * 1000 + jitter)
}

/// One transaction: lock the signed head, apply each job in a savepoint, move the head.
async fn run_batch(
    client: &mut Client,
    stmts: &mut Stmts,
    key: &AuditKey,
    ops: &[&Op],
) -> Result<(BatchResults, u64), Tx> {
    let mut tx = client.transaction().await?;
    let mut chain = lock_head(&tx, key).await?;
    let start = chain.seq;
    let mut results = Vec::with_capacity(ops.len());
    for op in ops {
        let saved = (chain.seq, chain.hash);
        let sp = tx.savepoint("job").await?;
        match apply(&sp, stmts, &mut chain, op).await {
            Ok(records) => {
                sp.commit().await?;
                results.push(Ok(records));
            }
            Err(Tx::Db(e)) if retryable(&e) => return Err(Tx::Db(e)),
            Err(e) => {
                sp.rollback().await?;
                (chain.seq, chain.hash) = saved;
                results.push(Err(match e {
                    Tx::Store(e) => e,
                    Tx::Db(e) => backend(e),
                }));
            }
        }
    }
    if chain.seq != start {
        write_head(&tx, stmts, &chain).await?;
    }
    tx.commit().await?;
    Ok((results, chain.seq - start))
}

/// Locks the signed head row for the rest of the transaction and returns the chain's end,
/// failing closed when the head does not verify.
async fn lock_head<'k>(tx: &Transaction<'_>, key: &'k AuditKey) -> Result<Chain<'k>, Tx> {
    let head = tx
        .query_opt(
            "SELECT seq, hash, mac FROM audit_head WHERE id = 1 FOR UPDATE",
            &[],
        )
        .await?
        .ok_or_else(|| {
            StoreError::Backend(
                "the signed audit head is missing: run `amanah audit verify`".into(),
            )
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

async fn write_head(tx: &Transaction<'_>, stmts: &mut Stmts, chain: &Chain<'_>) -> Result<(), Tx> {
    let mac = head_mac(chain.key, chain.seq, &chain.hash);
    let st = stmts
        .get(
            tx,
            "UPDATE audit_head SET seq = $1, hash = $2, mac = $3 WHERE id = 1",
        )
        .await?;
    tx.execute(&st, &[&(chain.seq as i64), &&chain.hash[..], &&mac[..]])
        .await?;
    Ok(())
}

async fn apply(
    tx: &Transaction<'_>,
    stmts: &mut Stmts,
    chain: &mut Chain<'_>,
    op: &Op,
) -> Result<Vec<AuditRecord>, Tx> {
    match op {
        Op::InsertSubject(s, audit) => {
            if let Some(category) = insert_new_subject(tx, stmts, s).await?.into_iter().next() {
                return Err(Tx::Store(StoreError::Unique { category }));
            }
            Ok(vec![append(tx, stmts, chain, audit).await?])
        }
        Op::UpdateSubject(u, audit) => {
            // Lock the subject row: concurrent updates of one subject apply one after the other.
            let st = stmts
                .get(tx, "SELECT 1 FROM subjects WHERE id = $1 FOR UPDATE")
                .await?;
            if tx.query_opt(&st, &[&u.id]).await?.is_none() {
                return Err(Tx::Store(StoreError::NotFound));
            }
            write_fields(tx, stmts, &u.id, u.at_micros, &u.fields).await?;
            if let Some(purpose) = &u.enroll {
                record_purpose(tx, stmts, &u.id, purpose, u.at_micros).await?;
            }
            Ok(vec![append(tx, stmts, chain, audit).await?])
        }
        Op::InsertConsent(c, audit) => {
            let guardian_missing = match &c.guardian_subject_id {
                Some(g) => !subject_exists(tx, stmts, g).await?,
                None => false,
            };
            if !subject_exists(tx, stmts, &c.subject_id).await? || guardian_missing {
                return Err(Tx::Store(StoreError::NotFound));
            }
            write_consent(tx, stmts, c).await?;
            if c.granted {
                // A consent is a ground of its own: the subject is enrolled in its purpose.
                record_purpose(tx, stmts, &c.subject_id, &c.purpose, c.at_micros).await?;
            }
            Ok(vec![append(tx, stmts, chain, audit).await?])
        }
        Op::InsertRelation(r, audit) => {
            if !subject_exists(tx, stmts, &r.subject_id).await?
                || !subject_exists(tx, stmts, &r.related_subject_id).await?
            {
                return Err(Tx::Store(StoreError::NotFound));
            }
            let st = stmts
                .get(
                    tx,
                    "INSERT INTO relations (id, subject_id, kind, related_subject_id, evidence,
                                            evidence_sha256, recorded_by, at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .await?;
            tx.execute(
                &st,
                &[
                    &r.id,
                    &r.subject_id,
                    &r.kind,
                    &r.related_subject_id,
                    &r.evidence,
                    &r.evidence_sha256,
                    &r.recorded_by,
                    &r.at_micros,
                ],
            )
            .await?;
            Ok(vec![append(tx, stmts, chain, audit).await?])
        }
        Op::Append(entries) => {
            let mut out = Vec::with_capacity(entries.len());
            for e in entries {
                out.push(append(tx, stmts, chain, e).await?);
            }
            Ok(out)
        }
        Op::InsertApiKey(k, audit) => {
            let st = stmts
                .get(
                    tx,
                    "INSERT INTO api_keys (id, name, role, token_hash, created_at, revoked_at, holder)
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .await?;
            tx.execute(
                &st,
                &[
                    &k.id,
                    &k.name,
                    &k.role,
                    &k.token_hash,
                    &k.created_at_micros,
                    &k.revoked_at_micros,
                    &k.holder,
                ],
            )
            .await?;
            Ok(vec![append(tx, stmts, chain, audit).await?])
        }
        Op::RevokeApiKey(id, at, audit) => {
            let st = stmts
                .get(
                    tx,
                    "UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
                )
                .await?;
            if tx.execute(&st, &[id, at]).await? == 0 {
                return Err(Tx::Store(StoreError::NotFound));
            }
            Ok(vec![append(tx, stmts, chain, audit).await?])
        }
        Op::InsertPolicy(p, audit) => {
            let st = stmts
                .get(
                    tx,
                    "INSERT INTO policy_versions (seq, version, source, sha256, applied_at)
                     SELECT COALESCE(MAX(seq), 0) + 1, $1, $2, $3, $4 FROM policy_versions",
                )
                .await?;
            tx.execute(
                &st,
                &[&p.version, &p.source, &p.sha256, &p.applied_at_micros],
            )
            .await?;
            Ok(vec![append(tx, stmts, chain, audit).await?])
        }
        Op::InsertDisclosure(..)
        | Op::StepDisclosure(..)
        | Op::RecordRelease { .. }
        | Op::InsertBreach(..)
        | Op::MarkBreachNotified { .. } => accountability::apply(tx, stmts, chain, op).await,
        rights_op => rights::apply(tx, stmts, chain, rights_op).await,
    }
}

/// Appends one entry after the locked head.
async fn append(
    tx: &Transaction<'_>,
    stmts: &mut Stmts,
    chain: &mut Chain<'_>,
    entry: &AuditDraft,
) -> Result<AuditRecord, Tx> {
    // Stored strings are bounded (and free of NUL, which `text` cannot hold).
    let bounded;
    let entry = if entry.within_bounds() {
        entry
    } else {
        bounded = entry.clone().bounded();
        &bounded
    };
    let seq = chain.seq + 1;
    let hash = chain.key.chain(&chain.hash, &canonical_bytes(seq, entry));
    let st = stmts
        .get(
            tx,
            "INSERT INTO audit_log (seq, at, actor, role, action, purpose, basis, outcome, reason,
                                    subject_id, fields, policy_version, hash)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .await?;
    tx.execute(
        &st,
        &[
            &(seq as i64),
            &entry.at_micros,
            &entry.actor,
            &entry.role,
            &entry.action,
            &entry.purpose,
            &entry.basis,
            &entry.outcome.as_str(),
            &entry.reason,
            &entry.subject,
            &crate::lists::encode(&entry.fields),
            &entry.policy_version,
            &&hash[..],
        ],
    )
    .await?;
    chain.seq = seq;
    chain.hash = hash;
    Ok(AuditRecord {
        seq,
        entry: entry.clone(),
        hash,
    })
}

async fn write_fields(
    tx: &Transaction<'_>,
    stmts: &mut Stmts,
    subject: &str,
    at: i64,
    fields: &[FieldWrite],
) -> Result<(), Tx> {
    for f in fields {
        let st = stmts
            .get(
                tx,
                "INSERT INTO subject_fields (subject_id, category, ciphertext, updated_at)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (subject_id, category)
                 DO UPDATE SET ciphertext = excluded.ciphertext, updated_at = excluded.updated_at",
            )
            .await?;
        tx.execute(&st, &[&subject, &f.category, &f.ciphertext, &at])
            .await?;
        let st = stmts
            .get(
                tx,
                "DELETE FROM blind_index WHERE subject_id = $1 AND category = $2",
            )
            .await?;
        tx.execute(&st, &[&subject, &f.category]).await?;
        let st = stmts
            .get(
                tx,
                "DELETE FROM unique_index WHERE subject_id = $1 AND category = $2",
            )
            .await?;
        tx.execute(&st, &[&subject, &f.category]).await?;
        if let Some(term) = &f.index_term {
            let st = stmts
                .get(
                    tx,
                    "INSERT INTO blind_index (category, term, subject_id) VALUES ($1, $2, $3)",
                )
                .await?;
            tx.execute(&st, &[&f.category, &&term[..], &subject])
                .await?;
            if f.unique {
                let st = stmts
                    .get(
                        tx,
                        "INSERT INTO unique_index (category, term, subject_id) VALUES ($1, $2, $3)
                         ON CONFLICT (category, term) DO NOTHING",
                    )
                    .await?;
                if tx
                    .execute(&st, &[&f.category, &&term[..], &subject])
                    .await?
                    == 0
                {
                    return Err(Tx::Store(StoreError::Unique {
                        category: f.category.clone(),
                    }));
                }
            }
        }
    }
    Ok(())
}

/// Inserts a new subject's rows (no audit entry). Returns the unique categories whose term
/// another subject already holds; the caller decides whether that is an error.
///
/// The statements do not depend on each other's results, so they are sent as one pipeline:
/// PostgreSQL runs them in the order sent (the subject row first, which the others reference),
/// and the job costs about one round trip instead of one per row.
async fn insert_new_subject(
    tx: &Transaction<'_>,
    stmts: &mut Stmts,
    s: &NewSubject,
) -> Result<Vec<String>, Tx> {
    let at = s.created_at_micros;
    let version = i64::from(s.wrapped_key.version);
    let subject_st = stmts
        .get(tx, "INSERT INTO subjects (id, created_at) VALUES ($1, $2)")
        .await?;
    let key_st = stmts
        .get(
            tx,
            "INSERT INTO amanah_keys.data_keys (subject_id, kek_id, key_version, wrapped_key)
             VALUES ($1, $2, $3, $4)",
        )
        .await?;
    let field_st = stmts
        .get(
            tx,
            "INSERT INTO subject_fields (subject_id, category, ciphertext, updated_at)
             VALUES ($1, $2, $3, $4)",
        )
        .await?;
    let blind_st = stmts
        .get(
            tx,
            "INSERT INTO blind_index (category, term, subject_id) VALUES ($1, $2, $3)",
        )
        .await?;
    let unique_st = stmts
        .get(
            tx,
            "INSERT INTO unique_index (category, term, subject_id) VALUES ($1, $2, $3)
             ON CONFLICT (category, term) DO NOTHING",
        )
        .await?;
    let purpose_st = stmts
        .get(
            tx,
            "INSERT INTO subject_purposes (subject_id, purpose, collected_at) VALUES ($1, $2, $3)
             ON CONFLICT (subject_id, purpose) DO NOTHING",
        )
        .await?;
    type Params<'a> = Vec<&'a (dyn ToSql + Sync)>;
    let mut batch: Vec<(&Statement, Params<'_>)> = vec![
        (&subject_st, vec![&s.id, &at]),
        (
            &key_st,
            vec![
                &s.id,
                &s.wrapped_key.kek_id,
                &version,
                &s.wrapped_key.ciphertext,
            ],
        ),
    ];
    let terms: Vec<_> = s
        .fields
        .iter()
        .map(|f| f.index_term.as_ref().map(|t| &t[..]))
        .collect();
    // Position in `batch` of each unique-term insert, with its category.
    let mut unique_at = Vec::new();
    for (f, term) in s.fields.iter().zip(&terms) {
        batch.push((&field_st, vec![&s.id, &f.category, &f.ciphertext, &at]));
        if let Some(term) = term {
            batch.push((&blind_st, vec![&f.category, term, &s.id]));
            if f.unique {
                unique_at.push((batch.len(), &f.category));
                batch.push((&unique_st, vec![&f.category, term, &s.id]));
            }
        }
    }
    batch.push((&purpose_st, vec![&s.id, &s.purpose, &at]));
    let rows = futures_util::future::try_join_all(
        batch
            .iter()
            .map(|(st, params)| tx.execute_raw(*st, params.iter().copied())),
    )
    .await?;
    let taken = unique_at
        .into_iter()
        .filter(|(i, _)| rows.get(*i) == Some(&0))
        .map(|(_, category)| category.clone())
        .collect();
    for c in &s.consents {
        write_consent(tx, stmts, c).await?;
    }
    Ok(taken)
}

async fn record_purpose(
    tx: &Transaction<'_>,
    stmts: &mut Stmts,
    subject: &str,
    purpose: &str,
    at: i64,
) -> Result<(), Tx> {
    let st = stmts
        .get(
            tx,
            "INSERT INTO subject_purposes (subject_id, purpose, collected_at) VALUES ($1, $2, $3)
             ON CONFLICT (subject_id, purpose) DO NOTHING",
        )
        .await?;
    tx.execute(&st, &[&subject, &purpose, &at]).await?;
    Ok(())
}

async fn subject_exists(tx: &Transaction<'_>, stmts: &mut Stmts, id: &str) -> Result<bool, Tx> {
    let st = stmts
        .get(tx, "SELECT 1 FROM subjects WHERE id = $1")
        .await?;
    Ok(tx.query_opt(&st, &[&id]).await?.is_some())
}

async fn write_consent(
    tx: &Transaction<'_>,
    stmts: &mut Stmts,
    c: &ConsentRecord,
) -> Result<(), Tx> {
    let st = stmts
        .get(
            tx,
            "INSERT INTO consents (seq, id, subject_id, purpose, purpose_version, policy_version,
                                   granted, given_by, capture_channel, contact_channels,
                                   guardian_subject_id, guardian_details, evidence,
                                   evidence_sha256, recorded_by, at)
             SELECT COALESCE(MAX(seq), 0) + 1, $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12,
                    $13, $14, $15
             FROM consents
             RETURNING seq",
        )
        .await?;
    let seq: i64 = tx
        .query_one(
            &st,
            &[
                &c.id,
                &c.subject_id,
                &c.purpose,
                &c.purpose_version,
                &c.policy_version,
                &c.granted,
                &c.given_by,
                &c.capture_channel,
                &c.contact_channels.join(","),
                &c.guardian_subject_id,
                &c.guardian_details,
                &c.evidence,
                &c.evidence_sha256,
                &c.recorded_by,
                &c.at_micros,
            ],
        )
        .await?
        .get(0);
    let st = stmts
        .get(
            tx,
            "INSERT INTO consent_current (purpose, subject_id, consent_seq) VALUES ($1, $2, $3)
             ON CONFLICT (purpose, subject_id) DO UPDATE SET consent_seq = excluded.consent_seq",
        )
        .await?;
    tx.execute(&st, &[&c.purpose, &c.subject_id, &seq]).await?;
    Ok(())
}

/// Subjects with their fields, from rows of `subjects LEFT JOIN subject_fields` ordered by id.
fn subjects_from_rows(rows: &[Row]) -> StoreResult<Vec<StoredSubject>> {
    let mut out: Vec<StoredSubject> = Vec::new();
    for r in rows {
        let id: String = r.try_get(0).map_err(backend)?;
        if out.last().is_none_or(|s| s.id != id) {
            out.push(StoredSubject {
                id: id.clone(),
                wrapped_key: WrappedKey {
                    kek_id: r.try_get(1).map_err(backend)?,
                    version: r.try_get::<_, i64>(2).map_err(backend)? as u32,
                    ciphertext: r.try_get(3).map_err(backend)?,
                },
                created_at_micros: r.try_get(4).map_err(backend)?,
                restricted_since_micros: r.try_get(7).map_err(backend)?,
                purposes: r.try_get(8).map_err(backend)?,
                fields: Vec::new(),
            });
        }
        let category: Option<String> = r.try_get(5).map_err(backend)?;
        let ciphertext: Option<Vec<u8>> = r.try_get(6).map_err(backend)?;
        if let (Some(c), Some(v), Some(s)) = (category, ciphertext, out.last_mut()) {
            s.fields.push((c, v));
        }
    }
    Ok(out)
}

#[async_trait]
impl Store for PgStore {
    async fn insert_subject(&self, s: NewSubject, audit: AuditDraft) -> StoreResult<AuditRecord> {
        self.write(Op::InsertSubject(s, audit)).await
    }

    async fn insert_subjects(
        &self,
        input: tokio::sync::mpsc::Receiver<BulkInsert>,
    ) -> StoreResult<u64> {
        let (reply, rx) = oneshot::channel();
        self.inner
            .writer
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
        self.write(Op::UpdateSubject(u, audit)).await
    }

    async fn load_subject(&self, id: &str) -> StoreResult<Option<StoredSubject>> {
        let rows = self
            .query(
                "SELECT s.id, k.kek_id, k.key_version, k.wrapped_key, s.created_at,
                        f.category, f.ciphertext, s.restricted_at,
                        ARRAY(SELECT p.purpose FROM subject_purposes p WHERE p.subject_id = s.id
                              ORDER BY p.collected_at, p.purpose)
                 FROM subjects s JOIN amanah_keys.data_keys k ON k.subject_id = s.id
                 LEFT JOIN subject_fields f ON f.subject_id = s.id
                 WHERE s.id = $1",
                &[&id],
            )
            .await?;
        Ok(subjects_from_rows(&rows)?.pop())
    }

    async fn find_subjects(
        &self,
        category: &str,
        term: [u8; 32],
        limit: usize,
    ) -> StoreResult<Vec<StoredSubject>> {
        let rows = self
            .query(
                "WITH ids AS (
                     SELECT subject_id FROM blind_index WHERE category = $1 AND term = $2
                     ORDER BY subject_id LIMIT $3
                 )
                 SELECT s.id, k.kek_id, k.key_version, k.wrapped_key, s.created_at,
                        f.category, f.ciphertext, s.restricted_at,
                        ARRAY(SELECT p.purpose FROM subject_purposes p WHERE p.subject_id = s.id
                              ORDER BY p.collected_at, p.purpose)
                 FROM ids JOIN subjects s ON s.id = ids.subject_id
                 JOIN amanah_keys.data_keys k ON k.subject_id = s.id
                 LEFT JOIN subject_fields f ON f.subject_id = s.id
                 ORDER BY s.id",
                &[&category, &&term[..], &limit_i64(limit)],
            )
            .await?;
        subjects_from_rows(&rows)
    }

    async fn insert_consent(
        &self,
        consent: ConsentRecord,
        audit: AuditDraft,
    ) -> StoreResult<AuditRecord> {
        self.write(Op::InsertConsent(consent, audit)).await
    }

    async fn consents(&self, subject: &str) -> StoreResult<Vec<ConsentRecord>> {
        self.all(sql::CONSENTS_OF, &[&subject], rows::consent).await
    }

    async fn select_consents(
        &self,
        purpose: &str,
        selection: ConsentSelection,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<ConsentRecord>> {
        let after = after.unwrap_or("");
        let limit = limit_i64(limit);
        match &selection {
            ConsentSelection::StaleFor { current_version } => {
                self.all(
                    sql::STALE_CONSENTS,
                    &[&purpose, &after, current_version, &limit],
                    rows::consent,
                )
                .await
            }
            ConsentSelection::ContactableOn {
                current_version,
                channel,
            } => {
                self.all(
                    sql::CONTACTABLE_CONSENTS,
                    &[&purpose, &after, current_version, channel, &limit],
                    rows::consent,
                )
                .await
            }
        }
    }

    async fn insert_relation(
        &self,
        relation: RelationRecord,
        audit: AuditDraft,
    ) -> StoreResult<AuditRecord> {
        self.write(Op::InsertRelation(relation, audit)).await
    }

    async fn relations(&self, subject: &str) -> StoreResult<Vec<RelationRecord>> {
        self.all(sql::RELATIONS_OF, &[&subject], rows::relation)
            .await
    }

    async fn append_audit(&self, entries: Vec<AuditDraft>) -> StoreResult<Vec<AuditRecord>> {
        self.write_many(Op::Append(entries)).await
    }

    async fn audit_entries(
        &self,
        subject: Option<&str>,
        after: u64,
        limit: usize,
    ) -> StoreResult<Vec<AuditRecord>> {
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        let limit = limit_i64(limit);
        match subject {
            Some(s) => {
                self.all(
                    sql::AUDIT_OF_SUBJECT_AFTER,
                    &[&s, &after, &limit],
                    rows::audit,
                )
                .await
            }
            None => {
                self.all(sql::AUDIT_AFTER, &[&after, &limit], rows::audit)
                    .await
            }
        }
    }

    async fn audit_head(&self) -> StoreResult<Option<(u64, [u8; 32], [u8; 32])>> {
        self.first(sql::AUDIT_HEAD, &[], rows::head).await
    }

    async fn insert_api_key(
        &self,
        key: ApiKeyRecord,
        audit: AuditDraft,
    ) -> StoreResult<AuditRecord> {
        self.write(Op::InsertApiKey(key, audit)).await
    }

    async fn api_key_by_hash(&self, token_hash: &str) -> StoreResult<Option<ApiKeyRecord>> {
        self.first(sql::API_KEY_BY_HASH, &[&token_hash], rows::api_key)
            .await
    }

    async fn list_api_keys(&self) -> StoreResult<Vec<ApiKeyRecord>> {
        self.all(sql::API_KEYS, &[], rows::api_key).await
    }

    async fn revoke_api_key(
        &self,
        id: &str,
        at_micros: i64,
        audit: AuditDraft,
    ) -> StoreResult<AuditRecord> {
        self.write(Op::RevokeApiKey(id.to_owned(), at_micros, audit))
            .await
    }

    async fn insert_policy(
        &self,
        policy: PolicyRecord,
        audit: AuditDraft,
    ) -> StoreResult<AuditRecord> {
        self.write(Op::InsertPolicy(policy, audit)).await
    }

    async fn flush(&self) -> StoreResult<()> {
        // PostgreSQL checkpoints on its own; a commit is already in the data files' WAL.
        Ok(())
    }

    async fn current_policy(&self) -> StoreResult<Option<PolicyRecord>> {
        self.first(sql::CURRENT_POLICY, &[], rows::policy).await
    }
}

#[cfg(test)]
mod tests {
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

    #[test]
    fn migrations_are_ordered_and_end_at_the_supported_version() {
        let versions: Vec<i64> = MIGRATIONS.iter().map(|(v, _)| *v).collect();
        assert!(versions.windows(2).all(|w| w[0] + 1 == w[1]));
        assert_eq!(versions.last(), Some(&PG_SCHEMA_VERSION));
    }
}

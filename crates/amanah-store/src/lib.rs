//! Amanah's storage: one trait, [`Store`], that every backend implements, the embedded
//! SQLite backend and the PostgreSQL backend. A store only ever sees ciphertexts, blind-index terms, hashes and ids: all
//! encryption happens before a value reaches it. Every write carries its audit entry, and the
//! store commits both in one transaction, so no change is ever unaudited.

#[macro_use]
mod sql;
#[macro_use]
mod exec;
mod access;
mod accountability;
mod documents;
mod integrity;
mod lists;
mod migrations;
mod ops;
mod postgres;
mod rights;
mod rotation;
mod rows;
pub mod sealed_fields;
mod sqlite;
mod tenants;
mod types;

pub use accountability::*;
pub use documents::*;
pub use migrations::SCHEMA_VERSION;
pub use postgres::admin as pg_admin;
pub use postgres::{describe as describe_pg_config, parse_url as parse_pg_url, PgStore};
pub use rights::*;
pub use rotation::*;
pub use sqlite::{
    inspect_backup, key_store_path, restore_data, restore_key_store, BackupKind, Reconciled,
    SqliteStore,
};
pub use tenants::*;
pub use types::*;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use amanah_core::audit::{AuditDraft, AuditRecord, ChainLink};
use amanah_crypto::audit::AuditKey;
use async_trait::async_trait;

use crate::exec::{Args, Map, Rows, Step};
use crate::ops::Op;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique blind-index term is already held by another subject.
    #[error("category {category:?} already holds this value for another subject")]
    Unique { category: String },
    #[error("not found")]
    NotFound,
    /// A conditional write changed nothing: the row is no longer in the state the write was
    /// conditioned on (e.g. a request moved on since it was read). The vault says which rule
    /// that breaks.
    #[error("the record changed since it was read")]
    Changed,
    /// A bulk insert collided with unique terms; nothing was written.
    #[error("{} subjects hold a unique value another subject already holds", .0.len())]
    Conflicts(Vec<UniqueConflict>),
    /// The database was written by a newer Amanah.
    #[error(
        "the store's schema version {found} is newer than this binary understands ({supported})"
    )]
    SchemaTooNew { found: i64, supported: i64 },
    /// An audit row holds what Amanah never writes (an unknown action): it was altered behind
    /// the store's back. Verification reports it as a break of the chain at that entry.
    #[error("audit entry {seq} holds an action Amanah never writes: the row was altered")]
    AlteredAuditEntry { seq: u64 },
    #[error("storage failure: {0}")]
    Backend(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// The storage contract. Methods that change data take the audit entry describing the change
/// and return it as appended to the chain.
#[async_trait]
pub trait Store:
    RightsStore
    + AccountabilityStore
    + KeyRotationStore
    + TenantStore
    + DocumentStore
    + Send
    + Sync
    + 'static
{
    // --- subjects ---
    async fn insert_subject(
        &self,
        subject: NewSubject,
        audit: AuditDraft,
    ) -> StoreResult<AuditRecord>;
    async fn update_subject(
        &self,
        update: SubjectUpdate,
        audit: AuditDraft,
    ) -> StoreResult<AuditRecord>;
    /// Inserts many new subjects, each with its own audit entry, in ONE transaction: all or
    /// nothing. Subjects are numbered from 0 in the order received. The store consumes `input`
    /// until [`BulkInsert::Commit`] (then commits and returns the number inserted) or until the
    /// sender is dropped without it (then rolls back and returns 0). If unique terms collide,
    /// with stored subjects or with earlier subjects of the same call, nothing is written and
    /// every collision is returned in [`StoreError::Conflicts`].
    async fn insert_subjects(
        &self,
        input: tokio::sync::mpsc::Receiver<BulkInsert>,
    ) -> StoreResult<u64>;
    async fn load_subject(&self, id: &str) -> StoreResult<Option<StoredSubject>>;
    /// Subjects holding `term` in the blind index of `category`, at most `limit`.
    async fn find_subjects(
        &self,
        category: &str,
        term: [u8; 32],
        limit: usize,
    ) -> StoreResult<Vec<StoredSubject>>;

    // --- consents and relations ---
    /// Records a consent decision; `NotFound` if the subject does not exist.
    async fn insert_consent(
        &self,
        consent: ConsentRecord,
        audit: AuditDraft,
    ) -> StoreResult<AuditRecord>;
    /// One subject's consent decisions, oldest first.
    async fn consents(&self, subject: &str) -> StoreResult<Vec<ConsentRecord>>;
    /// The latest decision of each subject for `purpose` that `selection` picks, ordered by
    /// subject id, starting after `after`, at most `limit`.
    async fn select_consents(
        &self,
        purpose: &str,
        selection: ConsentSelection,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<ConsentRecord>>;
    /// Records a relation; `NotFound` if either subject does not exist.
    async fn insert_relation(
        &self,
        relation: RelationRecord,
        audit: AuditDraft,
    ) -> StoreResult<AuditRecord>;
    /// Relations recorded on `subject` or pointing to it, oldest first.
    async fn relations(&self, subject: &str) -> StoreResult<Vec<RelationRecord>>;

    // --- audit ---
    /// Appends entries (in order, in one transaction) that record reads or refusals.
    async fn append_audit(&self, entries: Vec<AuditDraft>) -> StoreResult<Vec<AuditRecord>>;
    /// Entries with `seq > after`, oldest first, at most `limit`, optionally of one subject.
    async fn audit_entries(
        &self,
        subject: Option<&str>,
        after: u64,
        limit: usize,
    ) -> StoreResult<Vec<AuditRecord>>;
    /// Entries with `seq > after` as chain links, oldest first, at most `limit`: what
    /// verifying the chain reads, without a record per entry. Each link's MAC under `key` is
    /// computed where the rows are read (SQLite's reader threads), from the stored hash of the
    /// entry before it ([`amanah_core::audit::LinkCheck`]), so pages read ahead in parallel are
    /// checked as they are read. A row with an action Amanah never writes is
    /// `AlteredAuditEntry`, as in `audit_entries`.
    async fn audit_links(
        &self,
        key: &AuditKey,
        after: u64,
        limit: usize,
    ) -> StoreResult<Vec<ChainLink>>;
    /// The signed head: (seq, hash, mac) of the last entry, or `(0, genesis, mac)` before the
    /// first. `None` only when the head row was deleted (an integrity break).
    async fn audit_head(&self) -> StoreResult<Option<(u64, [u8; 32], [u8; 32])>>;
    /// The store's id, named in audit checkpoints (SQLite: the id both files carry).
    async fn store_id(&self) -> StoreResult<Option<String>> {
        Ok(None)
    }

    // --- API keys ---
    async fn insert_api_key(
        &self,
        key: ApiKeyRecord,
        audit: AuditDraft,
    ) -> StoreResult<AuditRecord>;
    async fn api_key_by_hash(&self, token_hash: &str) -> StoreResult<Option<ApiKeyRecord>>;
    /// The epoch of API-key revocations, when the store can tell it without a round trip to
    /// the database (the embedded store; `None` on PostgreSQL, and while a revocation is in
    /// progress): a key read by [`Store::api_key_by_hash`] while this was `Some(e)` is still
    /// as it was read while this is `Some(e)`, whichever process revokes keys.
    fn access_epoch(&self) -> Option<u64>;
    async fn list_api_keys(&self) -> StoreResult<Vec<ApiKeyRecord>>;
    /// Marks the key revoked; `NotFound` if there is no such key or it was already revoked.
    async fn revoke_api_key(
        &self,
        id: &str,
        at_micros: i64,
        audit: AuditDraft,
    ) -> StoreResult<AuditRecord>;

    // --- policy versions ---
    async fn insert_policy(
        &self,
        policy: PolicyRecord,
        audit: AuditDraft,
    ) -> StoreResult<AuditRecord>;
    async fn current_policy(&self) -> StoreResult<Option<PolicyRecord>>;
    /// Moves everything committed into the database files proper (SQLite: copies the
    /// write-ahead logs back and truncates them), e.g. after a bulk import, so the next
    /// process does not start on a log of gigabytes. Committed data is durable either way.
    async fn flush(&self) -> StoreResult<()>;
}

/// What a backend provides to the one implementation of the store traits below: group-commit
/// writes of [`Op`]s, reads of shared queries, and the few operations whose SQL is dialect-bound
/// or whose machinery differs (loading subjects, bulk insert, flush).
#[async_trait]
pub(crate) trait Backend: Send + Sync + 'static {
    /// Queues a write for the next group commit; its audit records once committed (durably).
    async fn write(&self, op: Op) -> StoreResult<Vec<AuditRecord>>;
    /// Every row of a read, each read by `map`.
    async fn all<T: Send + 'static>(&self, q: sql::Sql, args: Args<'_>, map: Map<T>) -> Rows<T>;
    /// The rows of a read fed in order to `step` with `state` (on SQLite's reader thread),
    /// until the rows end or `step` returns `false`; the state at the end.
    async fn fold<S: Send + 'static>(
        &self,
        q: sql::Sql,
        args: Args<'_>,
        state: S,
        step: Step<S>,
    ) -> StoreResult<S>;
    async fn load_subject(&self, id: &str) -> StoreResult<Option<StoredSubject>>;
    async fn find_subjects(&self, category: &str, term: [u8; 32], n: usize) -> Rows<StoredSubject>;
    async fn insert_subjects(
        &self,
        input: tokio::sync::mpsc::Receiver<BulkInsert>,
    ) -> StoreResult<u64>;
    async fn store_id(&self) -> StoreResult<Option<String>>;
    async fn flush(&self) -> StoreResult<()>;
    /// The audit key, which checks the MACs of the rows that grant access (`integrity`).
    fn records(&self) -> &AuditKey;
    /// The revocation epoch, if the backend keeps one (`access`).
    fn access(&self) -> Option<&access::AccessEpoch> {
        None
    }

    /// The first row of a read.
    async fn first<T: Send + 'static>(
        &self,
        q: sql::Sql,
        args: Args<'_>,
        map: Map<T>,
    ) -> StoreResult<Option<T>> {
        Ok(self.all(q, args, map).await?.into_iter().next())
    }

    /// A write with one audit entry.
    async fn write_one(&self, op: Op) -> StoreResult<AuditRecord> {
        self.write(op)
            .await?
            .pop()
            .ok_or_else(|| StoreError::Backend("no audit record".into()))
    }
}

/// Hands a job to one of a backend's workers (writer or readers) and waits for its reply.
pub(crate) async fn submit<J, T>(
    worker: &flume::Sender<J>,
    job: impl FnOnce(tokio::sync::oneshot::Sender<StoreResult<T>>) -> J,
) -> StoreResult<T> {
    let (reply, answer) = tokio::sync::oneshot::channel();
    let stopped = |_| StoreError::Backend("the store's worker has stopped".into());
    worker
        .send_async(job(reply))
        .await
        .map_err(|e| stopped(e.to_string()))?;
    answer.await.map_err(|e| stopped(e.to_string()))?
}

/// A result limit as SQL binds it.
pub(crate) fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[async_trait]
impl<B: Backend> Store for B {
    async fn insert_subject(&self, s: NewSubject, audit: AuditDraft) -> StoreResult<AuditRecord> {
        self.write_one(Op::InsertSubject(s, audit)).await
    }

    async fn update_subject(
        &self,
        u: SubjectUpdate,
        audit: AuditDraft,
    ) -> StoreResult<AuditRecord> {
        self.write_one(Op::UpdateSubject(u, audit)).await
    }

    async fn insert_subjects(
        &self,
        input: tokio::sync::mpsc::Receiver<BulkInsert>,
    ) -> StoreResult<u64> {
        Backend::insert_subjects(self, input).await
    }

    async fn load_subject(&self, id: &str) -> StoreResult<Option<StoredSubject>> {
        Backend::load_subject(self, id).await
    }

    async fn find_subjects(
        &self,
        category: &str,
        term: [u8; 32],
        limit: usize,
    ) -> StoreResult<Vec<StoredSubject>> {
        Backend::find_subjects(self, category, term, limit).await
    }

    async fn insert_consent(
        &self,
        consent: ConsentRecord,
        audit: AuditDraft,
    ) -> StoreResult<AuditRecord> {
        self.write_one(Op::InsertConsent(consent, audit)).await
    }

    async fn consents(&self, subject: &str) -> StoreResult<Vec<ConsentRecord>> {
        self.all(sql::CONSENTS_OF, args![subject], rows::consent)
            .await
    }

    async fn select_consents(
        &self,
        purpose: &str,
        selection: ConsentSelection,
        after: Option<&str>,
        n: usize,
    ) -> StoreResult<Vec<ConsentRecord>> {
        let after = after.unwrap_or("");
        match &selection {
            ConsentSelection::StaleFor { current_version } => {
                let args = args![purpose, after, current_version, limit(n)];
                self.all(sql::STALE_CONSENTS, args, rows::consent).await
            }
            ConsentSelection::ContactableOn {
                current_version,
                channel,
            } => {
                let args = args![purpose, after, current_version, channel, limit(n)];
                self.all(sql::CONTACTABLE_CONSENTS, args, rows::consent)
                    .await
            }
        }
    }

    async fn insert_relation(
        &self,
        relation: RelationRecord,
        audit: AuditDraft,
    ) -> StoreResult<AuditRecord> {
        self.write_one(Op::InsertRelation(relation, audit)).await
    }

    async fn relations(&self, subject: &str) -> StoreResult<Vec<RelationRecord>> {
        self.all(sql::RELATIONS_OF, args![subject], rows::relation)
            .await
    }

    async fn append_audit(&self, entries: Vec<AuditDraft>) -> StoreResult<Vec<AuditRecord>> {
        self.write(Op::Append(entries)).await
    }

    async fn audit_entries(
        &self,
        subject: Option<&str>,
        after: u64,
        n: usize,
    ) -> StoreResult<Vec<AuditRecord>> {
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        match subject {
            Some(s) => {
                let args = args![s, after, limit(n)];
                self.all(sql::AUDIT_OF_SUBJECT_AFTER, args, rows::audit)
                    .await
            }
            None => {
                let args = args![after, limit(n)];
                self.all(sql::AUDIT_AFTER, args, rows::audit).await
            }
        }
    }

    async fn audit_links(
        &self,
        key: &AuditKey,
        after: u64,
        n: usize,
    ) -> StoreResult<Vec<ChainLink>> {
        let reader = rows::LinkReader::new(key.clone(), after, n);
        let (from, rows) = reader.bounds();
        let args = args![from, limit(rows)];
        let reader = self
            .fold(sql::AUDIT_AFTER, args, reader, rows::LinkReader::step)
            .await?;
        Ok(reader.links)
    }

    async fn audit_head(&self) -> StoreResult<Option<(u64, [u8; 32], [u8; 32])>> {
        self.first(sql::AUDIT_HEAD, &[], rows::head).await
    }

    async fn store_id(&self) -> StoreResult<Option<String>> {
        Backend::store_id(self).await
    }

    async fn insert_api_key(
        &self,
        key: ApiKeyRecord,
        audit: AuditDraft,
    ) -> StoreResult<AuditRecord> {
        self.write_one(Op::InsertApiKey(key, audit)).await
    }

    async fn api_key_by_hash(&self, token_hash: &str) -> StoreResult<Option<ApiKeyRecord>> {
        let row = self
            .first(sql::API_KEY_BY_HASH, args![token_hash], rows::api_key)
            .await?;
        Ok(row.and_then(|row| integrity::checked_api_key(self.records(), row)))
    }

    fn access_epoch(&self) -> Option<u64> {
        self.access()?.current()
    }

    async fn list_api_keys(&self) -> StoreResult<Vec<ApiKeyRecord>> {
        let rows = self.all(sql::API_KEYS, &[], rows::api_key).await?;
        Ok(rows
            .into_iter()
            .filter_map(|row| integrity::checked_api_key(self.records(), row))
            .collect())
    }

    async fn revoke_api_key(
        &self,
        id: &str,
        at_micros: i64,
        audit: AuditDraft,
    ) -> StoreResult<AuditRecord> {
        let id = id.to_owned();
        // Marked before the commit and after it, so that no process trusts the key meanwhile.
        let _revoking = self.access().map(|a| a.begin()).transpose()?;
        self.write_one(Op::RevokeApiKey {
            id,
            at: at_micros,
            audit,
        })
        .await
    }

    async fn insert_policy(
        &self,
        policy: PolicyRecord,
        audit: AuditDraft,
    ) -> StoreResult<AuditRecord> {
        self.write_one(Op::InsertPolicy(policy, audit)).await
    }

    async fn current_policy(&self) -> StoreResult<Option<PolicyRecord>> {
        let key = self.records();
        match self.first(sql::NEWEST_POLICY, &[], rows::policy).await? {
            None => Ok(None),
            Some(row) if integrity::policy_holds(key, &row) => Ok(Some(row.0)),
            Some(_) => {
                let rows = self.all(sql::NEWEST_POLICIES, &[], rows::policy).await?;
                integrity::current_policy(key, rows)
            }
        }
    }

    async fn flush(&self) -> StoreResult<()> {
        Backend::flush(self).await
    }
}

#[async_trait]
impl<B: Backend> KeyRotationStore for B {
    async fn data_keys_not_under(
        &self,
        kek: &str,
        after: &str,
        n: usize,
    ) -> StoreResult<Vec<StoredDataKey>> {
        let args = args![kek, after, limit(n)];
        self.all(
            sql::keys::DATA_KEYS_NOT_UNDER,
            args,
            rotation::stored_data_key,
        )
        .await
    }

    async fn rewrap_data_keys(
        &self,
        rewraps: Vec<Rewrap>,
        audit: AuditDraft,
    ) -> StoreResult<(u64, AuditRecord)> {
        let updated = Arc::new(AtomicU64::new(0));
        let record = self
            .write_one(Op::RewrapKeys {
                rewraps,
                audit,
                updated: updated.clone(),
            })
            .await?;
        Ok((updated.load(Ordering::Relaxed), record))
    }

    async fn data_keys_per_kek(&self) -> StoreResult<Vec<(String, u64)>> {
        self.all(sql::keys::DATA_KEYS_PER_KEK, &[], rotation::kek_count)
            .await
    }
}

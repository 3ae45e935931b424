//! Amanah's storage: one trait, [`Store`], that every backend implements, the embedded
//! SQLite backend and the PostgreSQL backend. A store only ever sees ciphertexts, blind-index terms, hashes and ids: all
//! encryption happens before a value reaches it. Every write carries its audit entry, and the
//! store commits both in one transaction, so no change is ever unaudited.

mod accountability;
mod integrity;
mod lists;
mod postgres;
mod rights;
mod rotation;
mod rows;
mod sql;
mod sqlite;
mod types;

pub use accountability::*;
pub use postgres::{
    describe as describe_pg_config, parse_url as parse_pg_url, PgStore, PG_SCHEMA_VERSION,
};
pub use rights::*;
pub use rotation::*;
pub use sqlite::{
    inspect_backup, key_store_path, restore_data, restore_key_store, BackupKind, Reconciled,
    SqliteStore,
};
pub use types::*;

use amanah_core::audit::{AuditDraft, AuditRecord};
use async_trait::async_trait;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique blind-index term is already held by another subject.
    #[error("category {category:?} already holds this value for another subject")]
    Unique { category: String },
    #[error("not found")]
    NotFound,
    /// The row changed under the caller (e.g. a request moved on since it was read).
    #[error("{0}")]
    Conflict(String),
    /// A bulk insert collided with unique terms; nothing was written.
    #[error("{} subjects hold a unique value another subject already holds", .0.len())]
    Conflicts(Vec<UniqueConflict>),
    /// The database was written by a newer Amanah.
    #[error(
        "the store's schema version {found} is newer than this binary understands ({supported})"
    )]
    SchemaTooNew { found: i64, supported: i64 },
    #[error("storage failure: {0}")]
    Backend(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// The storage contract. Methods that change data take the audit entry describing the change
/// and return it as appended to the chain.
#[async_trait]
pub trait Store:
    RightsStore + AccountabilityStore + KeyRotationStore + Send + Sync + 'static
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

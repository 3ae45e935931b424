//! The storage contract for data-subject rights and retention: erasure (crypto-shredding),
//! restriction, legal holds, requests, the end of a relationship, retention sweeps and
//! de-identified records. Free texts (reasons, details) arrive sealed under the subject's key.

use amanah_core::audit::{AuditDraft, AuditRecord};
use async_trait::async_trait;

use crate::StoreResult;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestrictionRecord {
    pub since_micros: i64,
    /// Sealed reason, if one was given.
    pub reason: Option<Vec<u8>>,
    pub by: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldRecord {
    pub id: String,
    pub subject_id: String,
    /// Sealed under the subject's data key.
    pub reason: Vec<u8>,
    /// Last day of the hold, `YYYY-MM-DD`.
    pub until: String,
    pub created_at_micros: i64,
    pub created_by: String,
    pub released_at_micros: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord {
    pub id: String,
    pub subject_id: String,
    /// `access`, `rectification`, ... (`amanah_core::rights::RequestType`).
    pub kind: String,
    pub status: String,
    /// Sealed under the subject's data key.
    pub details: Option<Vec<u8>>,
    pub received_at_micros: i64,
    pub due_at_micros: i64,
    pub updated_at_micros: i64,
    pub refusal_reason: Option<String>,
    /// Sealed under the subject's data key.
    pub refusal_text: Option<Vec<u8>>,
    pub closed_at_micros: Option<i64>,
    pub received_by: String,
}

/// A status change; the store applies it only if the request is still in `from`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestTransition {
    pub id: String,
    pub from: String,
    pub to: String,
    pub at_micros: i64,
    pub closed: bool,
    pub refusal_reason: Option<String>,
    pub refusal_text: Option<Vec<u8>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestFilter {
    /// Only requests still awaiting an answer (received or in progress).
    pub open_only: bool,
    pub status: Option<String>,
    pub subject: Option<String>,
    /// Only open requests due before this instant.
    pub overdue_at: Option<i64>,
}

/// What a retention sweep needs to know about one subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionSubject {
    pub id: String,
    /// (purpose, collected_at)
    pub purposes: Vec<(String, i64)>,
    pub categories: Vec<String>,
    pub relationship_ended_micros: Option<i64>,
    /// Days (`YYYY-MM-DD`) until which unreleased holds run.
    pub holds_until: Vec<String>,
}

/// Attributes kept after de-identification, under a fresh id unlinkable to the subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeidentifiedRecord {
    pub id: String,
    pub purposes: Vec<String>,
    /// JSON object of de-identified attributes (e.g. birth year, province).
    pub attributes: String,
    /// Day of de-identification, `YYYY-MM-DD` (no finer, to avoid linking by time).
    pub created_on: String,
}

#[async_trait]
pub trait RightsStore: Send + Sync {
    /// Destroys the subject's data key and deletes every ciphertext, blind-index term, consent,
    /// relation and hold of the subject; records the erasure (a tombstone). `NotFound` if there
    /// is no such subject. Requests about the subject stay (their sealed texts are shredded).
    async fn erase_subject(
        &self,
        id: &str,
        at_micros: i64,
        cause: &str,
        audit: AuditDraft,
    ) -> StoreResult<AuditRecord>;
    /// When the subject was erased, if it was.
    async fn erased_at(&self, id: &str) -> StoreResult<Option<i64>>;

    /// Sets (Some) or lifts (None) a restriction. `NotFound` if no such subject.
    async fn set_restriction(
        &self,
        id: &str,
        restriction: Option<RestrictionRecord>,
        audit: AuditDraft,
    ) -> StoreResult<AuditRecord>;
    async fn restriction(&self, id: &str) -> StoreResult<Option<RestrictionRecord>>;

    async fn insert_hold(&self, hold: HoldRecord, audit: AuditDraft) -> StoreResult<AuditRecord>;
    /// Every hold of the subject, oldest first.
    async fn holds(&self, subject: &str) -> StoreResult<Vec<HoldRecord>>;
    /// `NotFound` if the subject has no such unreleased hold.
    async fn release_hold(
        &self,
        subject: &str,
        hold_id: &str,
        at_micros: i64,
        audit: AuditDraft,
    ) -> StoreResult<AuditRecord>;

    async fn insert_request(
        &self,
        request: RequestRecord,
        audit: AuditDraft,
    ) -> StoreResult<AuditRecord>;
    /// `NotFound` if no such request, `Conflict` if it is no longer in `transition.from`.
    async fn update_request(
        &self,
        transition: RequestTransition,
        audit: AuditDraft,
    ) -> StoreResult<AuditRecord>;
    async fn load_request(&self, id: &str) -> StoreResult<Option<RequestRecord>>;
    /// Requests matching `filter`, by due date then id, after the request `after`, at most `limit`.
    async fn list_requests(
        &self,
        filter: RequestFilter,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<RequestRecord>>;
    /// (open, overdue at `now_micros`) request counts.
    async fn count_requests(&self, now_micros: i64) -> StoreResult<(u64, u64)>;

    /// The purposes the subject's data was collected under, with when.
    async fn subject_purposes(&self, id: &str) -> StoreResult<Vec<(String, i64)>>;
    /// Records the end of the relationship (retention running from it starts). `NotFound` if no
    /// such subject.
    async fn end_relationship(
        &self,
        id: &str,
        at_micros: i64,
        audit: AuditDraft,
    ) -> StoreResult<AuditRecord>;
    /// A page of subjects for a retention sweep, by id, after `after`.
    async fn retention_page(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<RetentionSubject>>;
    /// Deletes some categories' ciphertexts and index terms, and the subject's records of the
    /// expired purposes.
    async fn erase_categories(
        &self,
        id: &str,
        categories: Vec<String>,
        expired_purposes: Vec<String>,
        audit: AuditDraft,
    ) -> StoreResult<AuditRecord>;
    /// Erases the subject (as `erase_subject`) and keeps `record` in the same transaction.
    async fn deidentify_subject(
        &self,
        id: &str,
        at_micros: i64,
        record: DeidentifiedRecord,
        audit: AuditDraft,
    ) -> StoreResult<AuditRecord>;
    /// Count of de-identified records (statistics).
    async fn deidentified_count(&self) -> StoreResult<u64>;
}

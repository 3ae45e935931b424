//! The storage contract for data-subject rights and retention: erasure (crypto-shredding),
//! restriction, legal holds, requests, the end of a relationship, retention sweeps and
//! de-identified records. Free texts (reasons, details) arrive sealed under the subject's key.

use amanah_core::audit::{AuditDraft, AuditRecord};
use async_trait::async_trait;

use crate::ops::Op;
use crate::{limit, rows, sql, Backend, StoreError, StoreResult};

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
    /// `NotFound` if no such request, `Changed` if it is no longer in `transition.from`.
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

#[async_trait]
impl<B: Backend> RightsStore for B {
    async fn erase_subject(
        &self,
        id: &str,
        at_micros: i64,
        cause: &str,
        audit: AuditDraft,
    ) -> StoreResult<AuditRecord> {
        let (id, cause) = (id.to_owned(), cause.to_owned());
        let at = at_micros;
        self.write_one(Op::EraseSubject {
            id,
            at,
            cause,
            audit,
        })
        .await
    }

    async fn erased_at(&self, id: &str) -> StoreResult<Option<i64>> {
        self.first(sql::ERASED_AT, args![id], rows::int).await
    }

    async fn set_restriction(
        &self,
        id: &str,
        restriction: Option<RestrictionRecord>,
        audit: AuditDraft,
    ) -> StoreResult<AuditRecord> {
        let id = id.to_owned();
        self.write_one(Op::SetRestriction {
            id,
            restriction,
            audit,
        })
        .await
    }

    async fn restriction(&self, id: &str) -> StoreResult<Option<RestrictionRecord>> {
        self.first(sql::RESTRICTION, args![id], rows::restriction)
            .await
    }

    async fn insert_hold(&self, hold: HoldRecord, audit: AuditDraft) -> StoreResult<AuditRecord> {
        self.write_one(Op::InsertHold(hold, audit)).await
    }

    async fn holds(&self, subject: &str) -> StoreResult<Vec<HoldRecord>> {
        self.all(sql::HOLDS_OF, args![subject], rows::hold).await
    }

    async fn release_hold(
        &self,
        subject: &str,
        hold_id: &str,
        at_micros: i64,
        audit: AuditDraft,
    ) -> StoreResult<AuditRecord> {
        let (subject, hold_id) = (subject.to_owned(), hold_id.to_owned());
        let at = at_micros;
        self.write_one(Op::ReleaseHold {
            subject,
            hold_id,
            at,
            audit,
        })
        .await
    }

    async fn insert_request(
        &self,
        request: RequestRecord,
        audit: AuditDraft,
    ) -> StoreResult<AuditRecord> {
        self.write_one(Op::InsertRequest(request, audit)).await
    }

    async fn update_request(
        &self,
        transition: RequestTransition,
        audit: AuditDraft,
    ) -> StoreResult<AuditRecord> {
        self.write_one(Op::UpdateRequest(transition, audit)).await
    }

    async fn load_request(&self, id: &str) -> StoreResult<Option<RequestRecord>> {
        self.first(sql::REQUEST_BY_ID, args![id], rows::request)
            .await
    }

    async fn list_requests(
        &self,
        filter: RequestFilter,
        after: Option<&str>,
        n: usize,
    ) -> StoreResult<Vec<RequestRecord>> {
        let f = &filter;
        let args = args![
            f.open_only,
            &f.status,
            &f.subject,
            f.overdue_at,
            after,
            limit(n)
        ];
        self.all(sql::LIST_REQUESTS, args, rows::request).await
    }

    async fn count_requests(&self, now_micros: i64) -> StoreResult<(u64, u64)> {
        self.first(sql::COUNT_REQUESTS, args![now_micros], rows::counts)
            .await?
            .ok_or_else(|| StoreError::Backend("no count".into()))
    }

    async fn subject_purposes(&self, id: &str) -> StoreResult<Vec<(String, i64)>> {
        self.all(sql::PURPOSES_OF, args![id], rows::string_and_i64)
            .await
    }

    async fn end_relationship(
        &self,
        id: &str,
        at_micros: i64,
        audit: AuditDraft,
    ) -> StoreResult<AuditRecord> {
        let (id, at) = (id.to_owned(), at_micros);
        self.write_one(Op::EndRelationship { id, at, audit }).await
    }

    async fn retention_page(
        &self,
        after: Option<&str>,
        n: usize,
    ) -> StoreResult<Vec<RetentionSubject>> {
        let after = after.unwrap_or("");
        let heads = self
            .all(
                sql::RETENTION_HEADS,
                args![after, limit(n)],
                rows::retention_head,
            )
            .await?;
        let mut out = Vec::with_capacity(heads.len());
        for (id, ended, fields) in heads {
            // The categories it holds: fields and documents. A malformed set of fields (altered
            // behind the store's back) cannot be changed category by category: the sweep goes
            // on without them (the subject's own retention still erases it whole).
            let mut categories = fields.unwrap_or_else(|e| {
                tracing::error!(subject = %id, "{e}: retention leaves its fields");
                Vec::new()
            });
            categories.extend(
                self.all(sql::DOCUMENT_CATEGORIES_OF, args![&id], rows::string)
                    .await?,
            );
            categories.sort_unstable();
            categories.dedup();
            out.push(RetentionSubject {
                purposes: self.subject_purposes(&id).await?,
                categories,
                holds_until: self.all(sql::HOLDS_UNTIL, args![&id], rows::string).await?,
                relationship_ended_micros: ended,
                id,
            });
        }
        Ok(out)
    }

    async fn erase_categories(
        &self,
        id: &str,
        categories: Vec<String>,
        expired: Vec<String>,
        audit: AuditDraft,
    ) -> StoreResult<AuditRecord> {
        let id = id.to_owned();
        self.write_one(Op::EraseCategories {
            id,
            categories,
            expired,
            audit,
        })
        .await
    }

    async fn deidentify_subject(
        &self,
        id: &str,
        at_micros: i64,
        record: DeidentifiedRecord,
        audit: AuditDraft,
    ) -> StoreResult<AuditRecord> {
        let (id, at) = (id.to_owned(), at_micros);
        self.write_one(Op::Deidentify {
            id,
            at,
            record,
            audit,
        })
        .await
    }

    async fn deidentified_count(&self) -> StoreResult<u64> {
        let n = self.first(sql::DEIDENTIFIED_COUNT, &[], rows::int).await?;
        Ok(n.unwrap_or(0) as u64)
    }
}

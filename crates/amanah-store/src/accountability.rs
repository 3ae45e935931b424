//! The storage contract for accountability: disclosures to recipients (with their subjects and
//! the workflow's steps), the breach register, and the counts the record of processing needs.
//! Disclosure reasons, references and breach texts are organizational records: the vault never
//! puts a subject's field values in them.

use amanah_core::audit::{AuditDraft, AuditRecord};
use async_trait::async_trait;

use crate::ops::Op;
use crate::{limit, rows, sql, Backend, StoreError, StoreResult};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisclosureRecord {
    pub id: String,
    pub recipient: String,
    pub purpose: String,
    /// The subjects whose data the disclosure carries (after any consent exclusions).
    pub subject_ids: Vec<String>,
    pub categories: Vec<String>,
    pub reason: String,
    /// The order's number for an authority, or any external reference.
    pub reference: Option<String>,
    /// `pending_approval`, `approved`, `authorized`, `released`, `rejected`
    /// (`amanah_core::disclosure::DisclosureStatus`).
    pub status: String,
    pub requested_by: String,
    pub requested_at_micros: i64,
    pub approved_by: Option<String>,
    pub approved_at_micros: Option<i64>,
    pub authorized_by: Option<String>,
    pub authorized_at_micros: Option<i64>,
    pub rejected_by: Option<String>,
    pub rejected_at_micros: Option<i64>,
    pub rejection_reason: Option<String>,
    pub releases: u32,
    pub max_releases: u32,
    pub first_released_at_micros: Option<i64>,
    pub last_released_at_micros: Option<i64>,
    /// Telling the subjects is deferred until this day (`YYYY-MM-DD`), for authority orders.
    pub notification_deferred_until: Option<String>,
    pub deferral_reason: Option<String>,
    /// JSON array of `{"subject_id", "reason"}` left out for lack of consent or a restriction.
    pub excluded: String,
}

/// A workflow step; the store applies it only if the disclosure is still in `from`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisclosureStep {
    pub id: String,
    pub from: String,
    pub to: String,
    pub by: String,
    pub at_micros: i64,
    /// For a rejection.
    pub reason: Option<String>,
}

/// One release, counted only if the disclosure is still as the vault read it: in status
/// `from`, released `releases` times so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisclosureRelease {
    pub id: String,
    pub from: String,
    pub releases: u32,
    pub at_micros: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DisclosureFilter {
    /// Only disclosures carrying this subject.
    pub subject: Option<String>,
    pub status: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreachRecord {
    pub id: String,
    pub detected_at_micros: i64,
    pub recorded_at_micros: i64,
    pub recorded_by: String,
    pub description: String,
    pub categories: Vec<String>,
    /// Every subject of the vault is affected; `subject_ids` is then empty.
    pub all_subjects: bool,
    pub subject_ids: Vec<String>,
    pub cause: String,
    pub measures: String,
    pub notify_by_micros: i64,
    pub notified_at_micros: Option<i64>,
    pub notified_by: Option<String>,
}

#[async_trait]
pub trait AccountabilityStore: Send + Sync {
    /// Records a requested disclosure. `NotFound` if one of its subjects does not exist.
    async fn insert_disclosure(
        &self,
        disclosure: DisclosureRecord,
        audit: AuditDraft,
    ) -> StoreResult<AuditRecord>;
    async fn load_disclosure(&self, id: &str) -> StoreResult<Option<DisclosureRecord>>;
    /// Approves, authorizes or rejects. `NotFound` if no such disclosure, `Changed` if it is no
    /// longer in `step.from`.
    async fn step_disclosure(
        &self,
        step: DisclosureStep,
        audit: AuditDraft,
    ) -> StoreResult<AuditRecord>;
    /// Counts one release (status becomes `released`) with its audit entries (one per subject
    /// carried) in one transaction; returns the number of releases so far. `NotFound` if no
    /// such disclosure, `Changed` if it is no longer in `release.from` with `release.releases`.
    async fn record_release(
        &self,
        release: DisclosureRelease,
        audit: Vec<AuditDraft>,
    ) -> StoreResult<u32>;
    /// Disclosures matching `filter`, newest first, after the disclosure `after`, at most `limit`.
    async fn list_disclosures(
        &self,
        filter: DisclosureFilter,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<DisclosureRecord>>;

    /// Records a breach. `NotFound` if one of its subjects does not exist.
    async fn insert_breach(
        &self,
        breach: BreachRecord,
        audit: AuditDraft,
    ) -> StoreResult<AuditRecord>;
    async fn load_breach(&self, id: &str) -> StoreResult<Option<BreachRecord>>;
    /// Breaches by detection time (newest first); with `overdue_at`, only those not notified
    /// whose deadline passed before it.
    async fn list_breaches(
        &self,
        overdue_at: Option<i64>,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<BreachRecord>>;
    /// Marks the notices of a breach sent. `NotFound` if no such breach, `Changed` if already.
    async fn mark_breach_notified(
        &self,
        id: &str,
        by: &str,
        at_micros: i64,
        audit: AuditDraft,
    ) -> StoreResult<AuditRecord>;
    /// (not yet notified, overdue at `now_micros`) breach counts.
    async fn count_breaches(&self, now_micros: i64) -> StoreResult<(u64, u64)>;
    /// Subject ids in order, after `after`, at most `limit` (for breaches of all subjects).
    async fn subject_ids(&self, after: Option<&str>, limit: usize) -> StoreResult<Vec<String>>;

    /// Live subjects per purpose they were collected under (record of processing).
    async fn subjects_per_purpose(&self) -> StoreResult<Vec<(String, u64)>>;
    /// Each purpose's current consent decisions, counted: (purpose, given, withdrawn).
    async fn consents_per_purpose(&self) -> StoreResult<Vec<(String, u64, u64)>>;
}

/// Reads the subjects a disclosure or breach carries ($1 its id).
async fn with_subjects<B: Backend, T>(
    b: &B,
    q: sql::Sql,
    found: Vec<T>,
    id_of: impl Fn(&mut T) -> (&String, &mut Vec<String>),
) -> StoreResult<Vec<T>> {
    let mut out = Vec::with_capacity(found.len());
    for mut record in found {
        let (id, subjects) = id_of(&mut record);
        *subjects = b.all(q, args![id.as_str()], rows::string).await?;
        out.push(record);
    }
    Ok(out)
}

fn disclosure_subjects(d: &mut DisclosureRecord) -> (&String, &mut Vec<String>) {
    (&d.id, &mut d.subject_ids)
}

fn breach_subjects(b: &mut BreachRecord) -> (&String, &mut Vec<String>) {
    (&b.id, &mut b.subject_ids)
}

#[async_trait]
impl<B: Backend> AccountabilityStore for B {
    async fn insert_disclosure(
        &self,
        disclosure: DisclosureRecord,
        audit: AuditDraft,
    ) -> StoreResult<AuditRecord> {
        self.write_one(Op::InsertDisclosure(disclosure, audit))
            .await
    }

    async fn load_disclosure(&self, id: &str) -> StoreResult<Option<DisclosureRecord>> {
        let found = self
            .all(sql::DISCLOSURE_BY_ID, args![id], rows::disclosure)
            .await?;
        let q = sql::DISCLOSURE_SUBJECTS;
        Ok(with_subjects(self, q, found, disclosure_subjects)
            .await?
            .pop())
    }

    async fn step_disclosure(
        &self,
        step: DisclosureStep,
        audit: AuditDraft,
    ) -> StoreResult<AuditRecord> {
        self.write_one(Op::StepDisclosure(step, audit)).await
    }

    async fn record_release(
        &self,
        release: DisclosureRelease,
        audit: Vec<AuditDraft>,
    ) -> StoreResult<u32> {
        let count = release.releases.saturating_add(1);
        self.write(Op::RecordRelease(release, audit)).await?;
        Ok(count)
    }

    async fn list_disclosures(
        &self,
        filter: DisclosureFilter,
        after: Option<&str>,
        n: usize,
    ) -> StoreResult<Vec<DisclosureRecord>> {
        let args = args![&filter.subject, &filter.status, after, limit(n)];
        let found = self
            .all(sql::LIST_DISCLOSURES, args, rows::disclosure)
            .await?;
        with_subjects(self, sql::DISCLOSURE_SUBJECTS, found, disclosure_subjects).await
    }

    async fn insert_breach(
        &self,
        breach: BreachRecord,
        audit: AuditDraft,
    ) -> StoreResult<AuditRecord> {
        self.write_one(Op::InsertBreach(breach, audit)).await
    }

    async fn load_breach(&self, id: &str) -> StoreResult<Option<BreachRecord>> {
        let found = self.all(sql::BREACH_BY_ID, args![id], rows::breach).await?;
        let q = sql::BREACH_SUBJECTS;
        Ok(with_subjects(self, q, found, breach_subjects).await?.pop())
    }

    async fn list_breaches(
        &self,
        overdue_at: Option<i64>,
        after: Option<&str>,
        n: usize,
    ) -> StoreResult<Vec<BreachRecord>> {
        let args = args![overdue_at, after, limit(n)];
        let found = self.all(sql::LIST_BREACHES, args, rows::breach).await?;
        with_subjects(self, sql::BREACH_SUBJECTS, found, breach_subjects).await
    }

    async fn mark_breach_notified(
        &self,
        id: &str,
        by: &str,
        at_micros: i64,
        audit: AuditDraft,
    ) -> StoreResult<AuditRecord> {
        let (id, by, at) = (id.to_owned(), by.to_owned(), at_micros);
        self.write_one(Op::MarkBreachNotified { id, by, at, audit })
            .await
    }

    async fn count_breaches(&self, now_micros: i64) -> StoreResult<(u64, u64)> {
        self.first(sql::COUNT_BREACHES, args![now_micros], rows::counts)
            .await?
            .ok_or_else(|| StoreError::Backend("no count".into()))
    }

    async fn subject_ids(&self, after: Option<&str>, n: usize) -> StoreResult<Vec<String>> {
        let after = after.unwrap_or("");
        self.all(sql::SUBJECT_IDS, args![after, limit(n)], rows::string)
            .await
    }

    async fn subjects_per_purpose(&self) -> StoreResult<Vec<(String, u64)>> {
        self.all(sql::SUBJECTS_PER_PURPOSE, &[], rows::string_and_count)
            .await
    }

    async fn consents_per_purpose(&self) -> StoreResult<Vec<(String, u64, u64)>> {
        self.all(sql::CONSENTS_PER_PURPOSE, &[], |r| {
            Ok((r.col(0)?, r.col::<i64>(1)? as u64, r.col::<i64>(2)? as u64))
        })
        .await
    }
}

use amanah_core::audit::AuditDraft;
use amanah_crypto::WrappedKey;

/// One message to [`crate::Store::insert_subjects`].
#[derive(Debug)]
pub enum BulkInsert {
    /// The next subjects, each with its `subject.create` audit entry.
    Subjects(Vec<(NewSubject, AuditDraft)>),
    /// Everything has been sent and is valid: commit.
    Commit,
}

/// A subject of a bulk insert whose unique term is already held by another subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UniqueConflict {
    /// Position of the subject in the bulk insert, from 0.
    pub index: u64,
    pub category: String,
}

/// One encrypted field to store, with its blind-index term when the category is indexed.
#[derive(Debug, Clone)]
pub struct FieldWrite {
    pub category: String,
    pub ciphertext: Vec<u8>,
    pub index_term: Option<[u8; 32]>,
    /// The term must not be held by another subject.
    pub unique: bool,
}

#[derive(Debug, Clone)]
pub struct NewSubject {
    pub id: String,
    pub wrapped_key: WrappedKey,
    pub created_at_micros: i64,
    /// The purpose the data was collected under (retention runs from here).
    pub purpose: String,
    pub fields: Vec<FieldWrite>,
}

#[derive(Debug, Clone)]
pub struct SubjectUpdate {
    pub id: String,
    pub at_micros: i64,
    pub purpose: String,
    /// Replaces these fields' values and moves their blind-index terms.
    pub fields: Vec<FieldWrite>,
}

#[derive(Debug, Clone)]
pub struct StoredSubject {
    pub id: String,
    pub wrapped_key: WrappedKey,
    pub created_at_micros: i64,
    /// (category, ciphertext)
    pub fields: Vec<(String, Vec<u8>)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    pub id: String,
    pub name: String,
    pub role: String,
    /// SHA-256 of the token; the token itself is never stored.
    pub token_hash: String,
    pub created_at_micros: i64,
    pub revoked_at_micros: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyRecord {
    /// Store-assigned, increasing with each applied policy (0 when not yet stored).
    pub seq: i64,
    pub version: String,
    pub source: String,
    pub sha256: String,
    pub applied_at_micros: i64,
}

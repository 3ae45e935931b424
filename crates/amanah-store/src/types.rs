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
    /// Consent decisions recorded with the subject (e.g. collected under a consent purpose).
    pub consents: Vec<ConsentRecord>,
}

#[derive(Debug, Clone)]
pub struct SubjectUpdate {
    pub id: String,
    pub at_micros: i64,
    /// Enrols the subject in this purpose too (the vault decided the ground for it).
    pub enroll: Option<String>,
    /// Replaces these fields' values and moves their blind-index terms.
    pub fields: Vec<FieldWrite>,
}

#[derive(Debug, Clone)]
pub struct StoredSubject {
    pub id: String,
    pub wrapped_key: WrappedKey,
    pub created_at_micros: i64,
    /// Set while processing is restricted (UU PDP Art. 41).
    pub restricted_since_micros: Option<i64>,
    /// The purposes the subject is enrolled in (collected, consented or enrolled under).
    pub purposes: Vec<String>,
    /// (category, ciphertext), in ascending order of category; `Err` when the stored set is
    /// malformed (altered behind the store's back): every use of the fields fails, while the
    /// subject can still be erased.
    pub fields: Result<Vec<(String, Vec<u8>)>, crate::sealed_fields::Malformed>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    pub id: String,
    pub name: String,
    pub role: String,
    /// The person the key was issued to (`Name <email>`); `None` for keys issued before
    /// holders were recorded.
    pub holder: Option<String>,
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

/// One consent decision (grant or withdrawal) as stored. Evidence and guardian details are
/// personal data: they arrive sealed under the subject's data key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentRecord {
    pub id: String,
    pub subject_id: String,
    pub purpose: String,
    pub purpose_version: String,
    pub policy_version: String,
    pub granted: bool,
    /// `subject` or `guardian`.
    pub given_by: String,
    /// Where the decision was captured (`web_form`, `paper`, ...).
    pub capture_channel: String,
    /// Marketing channels the person accepts.
    pub contact_channels: Vec<String>,
    /// A guardian who is a subject of the vault.
    pub guardian_subject_id: Option<String>,
    /// Sealed guardian details (name, contact, relationship) when the guardian is not a subject.
    pub guardian_details: Option<Vec<u8>>,
    /// Sealed evidence (form reference, signed statement...).
    pub evidence: Option<Vec<u8>>,
    /// Salted SHA-256 of the evidence, for receipts (hex).
    pub evidence_sha256: Option<String>,
    /// API key id (or `cli`) that recorded it.
    pub recorded_by: String,
    pub at_micros: i64,
}

/// Which subjects' current consent decision a listing selects (latest decision per subject).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsentSelection {
    /// Latest decision is a grant given for another version of the purpose.
    StaleFor { current_version: String },
    /// Latest decision is a grant for the current version that lists `channel`.
    ContactableOn {
        current_version: String,
        channel: String,
    },
}

/// A link between two subjects (guardian, parent, guarantor, emergency contact).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelationRecord {
    pub id: String,
    /// The subject the relation was recorded on (who provided the data).
    pub subject_id: String,
    pub kind: String,
    /// The related person, a subject with their own rights.
    pub related_subject_id: String,
    /// Sealed under `subject_id`'s data key.
    pub evidence: Option<Vec<u8>>,
    pub evidence_sha256: Option<String>,
    pub recorded_by: String,
    pub at_micros: i64,
}

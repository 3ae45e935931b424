//! The statements of every write, each written once (see [`crate::ops`] for the operations
//! that run them). A status change is a conditional update: it names the state the vault
//! decided on, and changes nothing (0 rows) when the row has moved on since.

use super::Sql;

/// A row lock on PostgreSQL (`FOR UPDATE`); SQLite has one writer, so the plain read.
macro_rules! locking {
    ($text:expr) => {
        Sql {
            pg: concat!($text, " FOR UPDATE"),
            lite: sql!($text).lite,
        }
    };
}

/// One audit entry, appended to the chain by each backend's writer.
pub(crate) const INSERT_AUDIT: Sql = sql!(
    "INSERT INTO audit_log (seq, at, actor, role, action, purpose, basis, outcome, reason,
                            subject_id, fields, policy_version, hash)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
);

// --- existence, to tell "no such row" from "the row changed" after a conditional update ---

pub(crate) const SUBJECT_EXISTS: Sql = sql!("SELECT 1 FROM subjects WHERE id = $1");
pub(crate) const REQUEST_EXISTS: Sql = sql!("SELECT 1 FROM requests WHERE id = $1");
pub(crate) const DISCLOSURE_EXISTS: Sql = sql!("SELECT 1 FROM disclosures WHERE id = $1");
pub(crate) const BREACH_EXISTS: Sql = sql!("SELECT 1 FROM breaches WHERE id = $1");

// --- subjects ---

/// Concurrent writes to one subject apply one after the other.
pub(crate) const LOCK_SUBJECT: Sql = locking!("SELECT 1 FROM subjects WHERE id = $1");

/// A new subject with its sealed fields (`crate::sealed_fields`) in its row.
pub(crate) const INSERT_SUBJECT: Sql =
    sql!("INSERT INTO subjects (id, created_at, fields) VALUES ($1, $2, $3)");

/// A subject's sealed fields, read to change some of them (the row locked on PostgreSQL: the
/// change is a read and a write of the whole set).
pub(crate) const FIELDS_FOR_UPDATE: Sql = locking!("SELECT fields FROM subjects WHERE id = $1");

pub(crate) const SET_FIELDS: Sql = sql!("UPDATE subjects SET fields = $2 WHERE id = $1");

/// A unique term is held in `unique_index` only (searches read both tables).
pub(crate) const INSERT_UNIQUE_TERM: Sql = sql!(
    "INSERT INTO unique_index (category, term, subject_id) VALUES ($1, $2, $3)
     ON CONFLICT (category, term) DO NOTHING"
);

pub(crate) const INSERT_TERM: Sql =
    sql!("INSERT INTO blind_index (category, term, subject_id) VALUES ($1, $2, $3)");

/// A category's index terms of one subject ($1 subject, $2 category); its value is in the
/// subject's row ([`SET_FIELDS`]).
pub(crate) const DELETE_CATEGORY_TERMS: [Sql; 2] = [
    sql!("DELETE FROM blind_index WHERE subject_id = $1 AND category = $2"),
    sql!("DELETE FROM unique_index WHERE subject_id = $1 AND category = $2"),
];

pub(crate) const INSERT_PURPOSE: Sql = sql!(
    "INSERT INTO subject_purposes (subject_id, purpose, collected_at) VALUES ($1, $2, $3)
     ON CONFLICT (subject_id, purpose) DO NOTHING"
);

pub(crate) const DELETE_PURPOSE: Sql =
    sql!("DELETE FROM subject_purposes WHERE subject_id = $1 AND purpose = $2");

// --- consents, relations, API keys, policies ---

/// Store-assigned numbers are `max + 1` inside the write transaction (PostgreSQL's writers
/// are serialized by the audit head's row lock, SQLite's by its one writer).
pub(crate) const INSERT_CONSENT: Sql = sql!(
    "INSERT INTO consents (seq, id, subject_id, purpose, purpose_version, policy_version,
                           granted, given_by, capture_channel, contact_channels,
                           guardian_subject_id, guardian_details, evidence, evidence_sha256,
                           recorded_by, at)
     SELECT COALESCE(MAX(seq), 0) + 1, $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13,
            $14, $15
     FROM consents
     RETURNING seq"
);

pub(crate) const SET_CURRENT_CONSENT: Sql = sql!(
    "INSERT INTO consent_current (purpose, subject_id, consent_seq) VALUES ($1, $2, $3)
     ON CONFLICT (purpose, subject_id) DO UPDATE SET consent_seq = excluded.consent_seq"
);

pub(crate) const INSERT_RELATION: Sql = sql!(
    "INSERT INTO relations (id, subject_id, kind, related_subject_id, evidence, evidence_sha256,
                            recorded_by, at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
);

pub(crate) const INSERT_API_KEY: Sql = sql!(
    "INSERT INTO api_keys (id, name, role, token_hash, created_at, revoked_at, holder, mac)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
);

/// Revokes a key and seals the row again as revoked ($3 its new MAC).
pub(crate) const REVOKE_API_KEY: Sql =
    sql!("UPDATE api_keys SET revoked_at = $2, mac = $3 WHERE id = $1 AND revoked_at IS NULL");

/// The number the row gets is part of its MAC: it is returned, then the row sealed
/// ([`SEAL_POLICY`]).
pub(crate) const INSERT_POLICY: Sql = sql!(
    "INSERT INTO policy_versions (seq, version, source, sha256, applied_at)
     SELECT COALESCE(MAX(seq), 0) + 1, $1, $2, $3, $4 FROM policy_versions
     RETURNING seq"
);

pub(crate) const SEAL_POLICY: Sql = sql!("UPDATE policy_versions SET mac = $2 WHERE seq = $1");

pub(crate) const SEAL_API_KEY: Sql = sql!("UPDATE api_keys SET mac = $2 WHERE id = $1");

// --- rights ---

/// Erasure, after the data key ([`super::keys::DELETE_DATA_KEY`]), in order ($1 subject):
/// relations either way, the subject (its fields with it, cascading to index terms, purposes,
/// consents and holds), and the sealed texts of requests about the subject, which can no longer be opened.
pub(crate) const SHRED: [Sql; 3] = [
    sql!("DELETE FROM relations WHERE subject_id = $1 OR related_subject_id = $1"),
    sql!("DELETE FROM subjects WHERE id = $1"),
    sql!("UPDATE requests SET details = NULL, refusal_text = NULL WHERE subject_id = $1"),
];

/// The tombstone that reads answer 410 from.
pub(crate) const INSERT_ERASURE: Sql = sql!(
    "INSERT INTO erasures (subject_id, erased_at, cause) VALUES ($1, $2, $3)
     ON CONFLICT (subject_id) DO NOTHING"
);

pub(crate) const SET_RESTRICTION: Sql = sql!(
    "UPDATE subjects SET restricted_at = $2, restriction_reason = $3, restricted_by = $4
     WHERE id = $1"
);

pub(crate) const INSERT_HOLD: Sql = sql!(
    "INSERT INTO holds (id, subject_id, reason, until, created_at, created_by, released_at)
     VALUES ($1, $2, $3, $4, $5, $6, NULL)"
);

pub(crate) const RELEASE_HOLD: Sql = sql!(
    "UPDATE holds SET released_at = $3
     WHERE id = $1 AND subject_id = $2 AND released_at IS NULL"
);

pub(crate) const INSERT_REQUEST: Sql = sql!(
    "INSERT INTO requests (id, subject_id, kind, status, details, received_at, due_at,
                           updated_at, refusal_reason, refusal_text, closed_at, received_by)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
);

/// Applies only while the request is still in status $7.
pub(crate) const TRANSITION_REQUEST: Sql = sql!(
    "UPDATE requests SET status = $2, updated_at = $3, refusal_reason = $4, refusal_text = $5,
                         closed_at = $6
     WHERE id = $1 AND status = $7"
);

pub(crate) const END_RELATIONSHIP: Sql = sql!(
    "UPDATE subjects SET relationship_ended_at = COALESCE(relationship_ended_at, $2)
     WHERE id = $1"
);

pub(crate) const INSERT_DEIDENTIFIED: Sql =
    sql!("INSERT INTO deidentified (id, purposes, attributes, created_on) VALUES ($1, $2, $3, $4)");

// --- accountability ---

pub(crate) const INSERT_DISCLOSURE: Sql = sql!(
    "INSERT INTO disclosures (id, recipient, purpose, categories, reason, reference, status,
         requested_by, requested_at, approved_by, approved_at, authorized_by, authorized_at,
         rejected_by, rejected_at, rejection_reason, releases, max_releases, first_released_at,
         last_released_at, deferred_until, deferral_reason, excluded)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18,
             $19, $20, $21, $22, $23)"
);

pub(crate) const INSERT_DISCLOSURE_SUBJECT: Sql = sql!(
    "INSERT INTO disclosure_subjects (disclosure_id, subject_id) VALUES ($1, $2)
     ON CONFLICT DO NOTHING"
);

/// The three workflow steps ($1 id, $2 new status, $3 by, $4 at, $5 rejection reason), each
/// applied only while the disclosure is still in status $6.
pub(crate) const APPROVE_DISCLOSURE: Sql = sql!(
    "UPDATE disclosures SET status = $2, approved_by = $3, approved_at = $4,
                            rejection_reason = COALESCE($5, rejection_reason)
     WHERE id = $1 AND status = $6"
);
pub(crate) const AUTHORIZE_DISCLOSURE: Sql = sql!(
    "UPDATE disclosures SET status = $2, authorized_by = $3, authorized_at = $4,
                            rejection_reason = COALESCE($5, rejection_reason)
     WHERE id = $1 AND status = $6"
);
pub(crate) const REJECT_DISCLOSURE: Sql = sql!(
    "UPDATE disclosures SET status = $2, rejected_by = $3, rejected_at = $4, rejection_reason = $5
     WHERE id = $1 AND status = $6"
);

/// Counts one release at $2, only while the disclosure is still in status $3 with $4 releases.
pub(crate) const RECORD_RELEASE: Sql = sql!(
    "UPDATE disclosures SET status = 'released', releases = releases + 1,
                            first_released_at = COALESCE(first_released_at, $2),
                            last_released_at = $2
     WHERE id = $1 AND status = $3 AND releases = $4"
);

pub(crate) const INSERT_BREACH: Sql = sql!(
    "INSERT INTO breaches (id, detected_at, recorded_at, recorded_by, description, categories,
         all_subjects, cause, measures, notify_by, notified_at, notified_by)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
);

pub(crate) const INSERT_BREACH_SUBJECT: Sql = sql!(
    "INSERT INTO breach_subjects (breach_id, subject_id) VALUES ($1, $2)
     ON CONFLICT DO NOTHING"
);

/// Applies only while the notices are not yet marked sent.
pub(crate) const MARK_BREACH_NOTIFIED: Sql = sql!(
    "UPDATE breaches SET notified_at = $2, notified_by = $3 WHERE id = $1 AND notified_at IS NULL"
);

// --- tenants (the platform's store) ---

pub(crate) const INSERT_TENANT: Sql = sql!(
    "INSERT INTO tenants (id, name, status, sealed_keys, sealed_placement, max_subjects, max_rps,
                          created_at, changed_at, purged)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, FALSE)"
);

/// A state change; into `deleted` it clears the sealed key ring in the same statement.
pub(crate) const CHANGE_TENANT: Sql = sql!(
    "UPDATE tenants SET status = $3, changed_at = $4,
         sealed_keys = CASE WHEN $3 = 'deleted' THEN NULL ELSE sealed_keys END
     WHERE id = $1 AND status = $2"
);

pub(crate) const PURGE_TENANT: Sql = sql!(
    "UPDATE tenants SET purged = TRUE, sealed_placement = NULL
     WHERE id = $1 AND status = 'deleted' AND purged = FALSE"
);

pub(crate) const SET_TENANT_QUOTAS: Sql = sql!(
    "UPDATE tenants SET max_subjects = $2, max_rps = $3, changed_at = $4
     WHERE id = $1 AND status <> 'deleted'"
);

// --- documents ---

/// An upload under way: its object is deleted a day later unless the upload commits.
pub(crate) const RESERVE_OBJECT: Sql = sql!(
    "INSERT INTO object_trash (object, pending_since) VALUES ($1, $2)
     ON CONFLICT (object) DO NOTHING"
);

/// The next version of the category ($1 id, $2 subject, $3 category, $4 object, $5 sealed
/// metadata, $6 stored size, $7 upload time).
pub(crate) const INSERT_DOCUMENT: Sql = sql!(
    "INSERT INTO documents (id, subject_id, category, version, object, sealed, stored_size,
                            uploaded_at)
     SELECT $1, $2, $3, COALESCE(MAX(version), 0) + 1, $4, $5, $6, $7
     FROM documents WHERE subject_id = $2 AND category = $3"
);

/// The upload committed: its object is no longer to delete.
pub(crate) const KEEP_OBJECT: Sql =
    sql!("DELETE FROM object_trash WHERE object = $1 AND pending_since IS NOT NULL");

/// A category's documents, for retention's erasure of a category (the trigger trashes their
/// objects).
pub(crate) const DELETE_CATEGORY_DOCUMENTS: Sql =
    sql!("DELETE FROM documents WHERE subject_id = $1 AND category = $2");

/// The object was deleted from the object store.
pub(crate) const FORGET_OBJECT: Sql = sql!("DELETE FROM object_trash WHERE object = $1");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dialect_bound_statements_differ_only_where_they_must() {
        assert_eq!(
            LOCK_SUBJECT.pg,
            "SELECT 1 FROM subjects WHERE id = $1 FOR UPDATE"
        );
        assert_eq!(LOCK_SUBJECT.lite, "SELECT 1 FROM subjects WHERE id = ?1");
        assert!(SHRED[0].lite.ends_with("OR related_subject_id = ?1"));
    }
}

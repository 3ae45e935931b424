//! The queries both backends run, each written once. A query is written in PostgreSQL's form
//! (`$1`, `$2`, ...) in the subset of SQL both databases share (`CAST(x AS TEXT)` rather than
//! `x::TEXT`, `COUNT(CASE ...)` rather than `FILTER`, row values, CTEs); [`sql!`] derives the
//! SQLite text at compile time by rewriting each `$N` to `?N`, which SQLite binds by number
//! exactly as PostgreSQL does. Row mapping for these columns lives in [`crate::rows`].
//!
//! The statements of writes are in [`writes`]. What stays per backend: the migrations, the
//! group-commit writers, and the few queries that need a dialect (`FOR UPDATE`, arrays,
//! `instr`/`strpos`, the key store's name): those give both texts here.

/// One query's text for each backend.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sql {
    pub(crate) pg: &'static str,
    pub(crate) lite: &'static str,
}

/// The SQLite form of a query: every `$` followed by a digit becomes `?` (same length).
pub(crate) const fn to_lite<const N: usize>(text: &str) -> [u8; N] {
    let b = text.as_bytes();
    let mut out = [0u8; N];
    let mut i = 0;
    while i < N {
        out[i] = if b[i] == b'$' && i + 1 < N && b[i + 1].is_ascii_digit() {
            b'?'
        } else {
            b[i]
        };
        i += 1;
    }
    out
}

/// `sql!("SELECT ... WHERE id = $1")`: a [`Sql`] whose SQLite text is derived at compile time.
macro_rules! sql {
    ($text:expr) => {
        $crate::sql::Sql {
            pg: $text,
            lite: {
                const BYTES: [u8; $text.len()] = $crate::sql::to_lite($text);
                match ::std::str::from_utf8(&BYTES) {
                    Ok(s) => s,
                    Err(_) => panic!("a query is not UTF-8"),
                }
            },
        }
    };
}

macro_rules! consent_columns {
    () => {
        "c.id, c.subject_id, c.purpose, c.purpose_version, c.policy_version, c.granted,
         c.given_by, c.capture_channel, c.contact_channels, c.guardian_subject_id,
         c.guardian_details, c.evidence, c.evidence_sha256, c.recorded_by, c.at"
    };
}

/// The latest decision per subject for a purpose, granted, after a subject id.
macro_rules! current_consents {
    () => {
        concat!(
            "SELECT ",
            consent_columns!(),
            " FROM consent_current cc JOIN consents c ON c.seq = cc.consent_seq
              WHERE cc.purpose = $1 AND cc.subject_id > $2 AND c.granted"
        )
    };
}

macro_rules! subjects_with_term {
    () => {
        "SELECT subject_id FROM unique_index WHERE category = $1 AND term = $2
         UNION
         SELECT subject_id FROM blind_index WHERE category = $1 AND term = $2
         ORDER BY subject_id LIMIT $3"
    };
}

macro_rules! audit_columns {
    () => {
        "seq, at, actor, role, action, purpose, basis, outcome, reason, subject_id, fields,
         policy_version, hash"
    };
}

macro_rules! api_key_columns {
    () => {
        "id, name, role, token_hash, created_at, revoked_at, holder, mac"
    };
}

macro_rules! request_columns {
    () => {
        "r.id, r.subject_id, r.kind, r.status, r.details, r.received_at, r.due_at, r.updated_at,
         r.refusal_reason, r.refusal_text, r.closed_at, r.received_by"
    };
}

macro_rules! disclosure_columns {
    () => {
        "d.id, d.recipient, d.purpose, d.categories, d.reason, d.reference, d.status,
         d.requested_by, d.requested_at, d.approved_by, d.approved_at, d.authorized_by,
         d.authorized_at, d.rejected_by, d.rejected_at, d.rejection_reason, d.releases,
         d.max_releases, d.first_released_at, d.last_released_at, d.deferred_until,
         d.deferral_reason, d.excluded"
    };
}

macro_rules! breach_columns {
    () => {
        "b.id, b.detected_at, b.recorded_at, b.recorded_by, b.description, b.categories,
         b.all_subjects, b.cause, b.measures, b.notify_by, b.notified_at, b.notified_by"
    };
}

// --- subjects, consents, relations ---

pub(crate) const CONSENTS_OF: Sql = sql!(concat!(
    "SELECT ",
    consent_columns!(),
    " FROM consents c WHERE c.subject_id = $1 ORDER BY c.seq"
));

pub(crate) const STALE_CONSENTS: Sql = sql!(concat!(
    current_consents!(),
    " AND c.purpose_version <> $3 ORDER BY cc.subject_id LIMIT $4"
));

/// A channel in a comma-joined list, found by `strpos` (PostgreSQL) or `instr` (SQLite).
macro_rules! contactable {
    ($position:literal) => {
        sql!(concat!(
            current_consents!(),
            " AND c.purpose_version = $3 AND ",
            $position,
            "(',' || c.contact_channels || ',', ',' || $4 || ',') > 0
             ORDER BY cc.subject_id LIMIT $5"
        ))
    };
}

/// The one dialect difference of the consent listings.
pub(crate) const CONTACTABLE_CONSENTS: Sql = Sql {
    pg: contactable!("strpos").pg,
    lite: contactable!("instr").lite,
};

pub(crate) const RELATIONS_OF: Sql = sql!(
    "SELECT id, subject_id, kind, related_subject_id, evidence, evidence_sha256, recorded_by, at
     FROM relations WHERE subject_id = $1 OR related_subject_id = $1 ORDER BY at, id"
);

pub(crate) const COUNT_SUBJECTS: Sql = sql!("SELECT COUNT(*) FROM subjects");

// --- tenants (the platform's store) ---

macro_rules! tenant_columns {
    () => {
        "id, name, status, sealed_keys, sealed_placement, max_subjects, max_rps, created_at, \
         changed_at, purged"
    };
}

pub(crate) const TENANT: Sql = sql!(concat!(
    "SELECT ",
    tenant_columns!(),
    " FROM tenants WHERE id = $1"
));

pub(crate) const TENANTS: Sql = sql!(concat!(
    "SELECT ",
    tenant_columns!(),
    " FROM tenants ORDER BY created_at, id"
));

pub(crate) const TENANT_EXISTS: Sql = sql!("SELECT 1 FROM tenants WHERE id = $1");

macro_rules! document_columns {
    () => {
        "id, subject_id, category, version, object, sealed, stored_size, uploaded_at"
    };
}

/// One subject's documents, every version, by category then version.
pub(crate) const DOCUMENTS_OF: Sql = sql!(concat!(
    "SELECT ",
    document_columns!(),
    " FROM documents WHERE subject_id = $1 ORDER BY category, version"
));

pub(crate) const DOCUMENT: Sql = sql!(concat!(
    "SELECT ",
    document_columns!(),
    " FROM documents WHERE subject_id = $1 AND id = $2"
));

/// Objects whose document is gone, and uploads that never committed (pending since before $1).
pub(crate) const OBJECTS_TO_DELETE: Sql = sql!(
    "SELECT object FROM object_trash WHERE pending_since IS NULL OR pending_since < $1
     ORDER BY object LIMIT $2"
);

/// Whether an object is a document's (an object in the store that no row names is an orphan).
pub(crate) const OBJECT_KNOWN: Sql = sql!(
    "SELECT 1 FROM documents WHERE object = $1
     UNION ALL SELECT 1 FROM object_trash WHERE object = $1"
);

pub(crate) const SUBJECT_IDS: Sql =
    sql!("SELECT id FROM subjects WHERE id > $1 ORDER BY id LIMIT $2");

pub(crate) const SUBJECTS_PER_PURPOSE: Sql = sql!(
    "SELECT purpose, COUNT(DISTINCT subject_id) FROM subject_purposes
     GROUP BY purpose ORDER BY purpose"
);

/// The current consent decision of each subject per purpose, counted: (purpose, given,
/// withdrawn). Counts only: the console's statistics.
pub(crate) const CONSENTS_PER_PURPOSE: Sql = sql!(
    "SELECT cc.purpose, COUNT(CASE WHEN c.granted THEN 1 END),
            COUNT(CASE WHEN c.granted THEN NULL ELSE 1 END)
     FROM consent_current cc JOIN consents c ON c.seq = cc.consent_seq
     GROUP BY cc.purpose ORDER BY cc.purpose"
);

pub(crate) const PURPOSES_OF: Sql = sql!(
    "SELECT purpose, collected_at FROM subject_purposes WHERE subject_id = $1
     ORDER BY collected_at, purpose"
);

// --- audit ---

pub(crate) const AUDIT_AFTER: Sql = sql!(concat!(
    "SELECT ",
    audit_columns!(),
    " FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2"
));

pub(crate) const AUDIT_OF_SUBJECT_AFTER: Sql = sql!(concat!(
    "SELECT ",
    audit_columns!(),
    " FROM audit_log WHERE subject_id = $1 AND seq > $2 ORDER BY seq LIMIT $3"
));

pub(crate) const AUDIT_HEAD: Sql = sql!("SELECT seq, hash, mac FROM audit_head WHERE id = 1");

// --- API keys, policy ---

pub(crate) const API_KEY_BY_HASH: Sql = sql!(concat!(
    "SELECT ",
    api_key_columns!(),
    " FROM api_keys WHERE token_hash = $1"
));

pub(crate) const API_KEYS: Sql = sql!(concat!(
    "SELECT ",
    api_key_columns!(),
    " FROM api_keys ORDER BY created_at, id"
));

pub(crate) const API_KEY_BY_ID: Sql = sql!(concat!(
    "SELECT ",
    api_key_columns!(),
    " FROM api_keys WHERE id = $1"
));

/// The newest policy version: the one in force when its MAC holds (the common case, read on every
/// reload).
pub(crate) const NEWEST_POLICY: Sql = sql!(
    "SELECT seq, version, source, sha256, applied_at, mac FROM policy_versions
     ORDER BY seq DESC LIMIT 1"
);

/// The newest policy versions first, read only when the newest fails its MAC: the current one
/// is the newest whose MAC holds (a bound, so that forged rows cannot make every reload read the
/// whole table).
pub(crate) const NEWEST_POLICIES: Sql = sql!(
    "SELECT seq, version, source, sha256, applied_at, mac FROM policy_versions
     ORDER BY seq DESC LIMIT 64"
);

/// Rows written before schema 7, sealed by its migration.
pub(crate) const UNSEALED_API_KEYS: Sql = sql!(concat!(
    "SELECT ",
    api_key_columns!(),
    " FROM api_keys WHERE mac IS NULL"
));

pub(crate) const UNSEALED_POLICIES: Sql = sql!(
    "SELECT seq, version, source, sha256, applied_at, mac FROM policy_versions WHERE mac IS NULL"
);

// --- rights ---

pub(crate) const ERASED_AT: Sql = sql!("SELECT erased_at FROM erasures WHERE subject_id = $1");

pub(crate) const RESTRICTION: Sql = sql!(
    "SELECT restricted_at, restriction_reason, restricted_by FROM subjects
     WHERE id = $1 AND restricted_at IS NOT NULL"
);

pub(crate) const HOLDS_OF: Sql = sql!(
    "SELECT id, subject_id, reason, until, created_at, created_by, released_at FROM holds
     WHERE subject_id = $1 ORDER BY created_at, id"
);

pub(crate) const REQUEST_BY_ID: Sql = sql!(concat!(
    "SELECT ",
    request_columns!(),
    " FROM requests r WHERE r.id = $1"
));

/// Filters: $1 open only, $2 status, $3 subject, $4 overdue at; keyset paging on
/// (due_at, id) after the request $5; at most $6.
pub(crate) const LIST_REQUESTS: Sql = sql!(concat!(
    "WITH cursor AS (SELECT due_at, id FROM requests WHERE id = $5)
     SELECT ",
    request_columns!(),
    " FROM requests r
     WHERE ($1 = FALSE OR r.status IN ('received', 'in_progress'))
       AND (CAST($2 AS TEXT) IS NULL OR r.status = $2)
       AND (CAST($3 AS TEXT) IS NULL OR r.subject_id = $3)
       AND (CAST($4 AS BIGINT) IS NULL OR (r.status IN ('received', 'in_progress') AND r.due_at < $4))
       AND (CAST($5 AS TEXT) IS NULL OR NOT EXISTS (SELECT 1 FROM cursor)
            OR (r.due_at, r.id) > (SELECT due_at, id FROM cursor))
     ORDER BY r.due_at, r.id LIMIT $6"
));

/// (open, overdue at $1).
pub(crate) const COUNT_REQUESTS: Sql = sql!(
    "SELECT COUNT(*), COUNT(CASE WHEN due_at < $1 THEN 1 END) FROM requests
     WHERE status IN ('received', 'in_progress')"
);

/// Subjects after $1 with their relationship's end and their sealed fields (whose categories
/// retention reads), at most $2.
pub(crate) const RETENTION_HEADS: Sql = sql!(
    "SELECT id, relationship_ended_at, fields FROM subjects WHERE id > $1 ORDER BY id LIMIT $2"
);

/// The categories a subject holds a document of (any version).
pub(crate) const DOCUMENT_CATEGORIES_OF: Sql =
    sql!("SELECT DISTINCT category FROM documents WHERE subject_id = $1");

pub(crate) const HOLDS_UNTIL: Sql =
    sql!("SELECT until FROM holds WHERE subject_id = $1 AND released_at IS NULL");

pub(crate) const DEIDENTIFIED_COUNT: Sql = sql!("SELECT COUNT(*) FROM deidentified");

// --- accountability ---

pub(crate) const DISCLOSURE_BY_ID: Sql = sql!(concat!(
    "SELECT ",
    disclosure_columns!(),
    " FROM disclosures d WHERE d.id = $1"
));

pub(crate) const DISCLOSURE_SUBJECTS: Sql =
    sql!("SELECT subject_id FROM disclosure_subjects WHERE disclosure_id = $1 ORDER BY subject_id");

/// Filters: $1 subject, $2 status; keyset paging on (requested_at, id) descending after the
/// disclosure $3; at most $4.
pub(crate) const LIST_DISCLOSURES: Sql = sql!(concat!(
    "WITH cursor AS (SELECT requested_at, id FROM disclosures WHERE id = $3)
     SELECT ",
    disclosure_columns!(),
    " FROM disclosures d
     WHERE (CAST($1 AS TEXT) IS NULL OR d.id IN
              (SELECT disclosure_id FROM disclosure_subjects WHERE subject_id = $1))
       AND (CAST($2 AS TEXT) IS NULL OR d.status = $2)
       AND (CAST($3 AS TEXT) IS NULL OR NOT EXISTS (SELECT 1 FROM cursor)
            OR (d.requested_at, d.id) < (SELECT requested_at, id FROM cursor))
     ORDER BY d.requested_at DESC, d.id DESC LIMIT $4"
));

pub(crate) const BREACH_BY_ID: Sql = sql!(concat!(
    "SELECT ",
    breach_columns!(),
    " FROM breaches b WHERE b.id = $1"
));

pub(crate) const BREACH_SUBJECTS: Sql =
    sql!("SELECT subject_id FROM breach_subjects WHERE breach_id = $1 ORDER BY subject_id");

/// Filter: $1 overdue at; keyset paging on (detected_at, id) descending after the breach $2;
/// at most $3.
pub(crate) const LIST_BREACHES: Sql = sql!(concat!(
    "WITH cursor AS (SELECT detected_at, id FROM breaches WHERE id = $2)
     SELECT ",
    breach_columns!(),
    " FROM breaches b
     WHERE (CAST($1 AS BIGINT) IS NULL OR (b.notified_at IS NULL AND b.notify_by < $1))
       AND (CAST($2 AS TEXT) IS NULL OR NOT EXISTS (SELECT 1 FROM cursor)
            OR (b.detected_at, b.id) < (SELECT detected_at, id FROM cursor))
     ORDER BY b.detected_at DESC, b.id DESC LIMIT $3"
));

/// (not notified, overdue at $1).
pub(crate) const COUNT_BREACHES: Sql = sql!(
    "SELECT COUNT(*), COUNT(CASE WHEN notify_by < $1 THEN 1 END) FROM breaches
     WHERE notified_at IS NULL"
);

// --- searches ---

/// Subjects holding a term: a unique term is in `unique_index` (older stores also copied it
/// to `blind_index`), other terms in `blind_index` ($1 category, $2 term, at most $3).
pub(crate) const SUBJECTS_WITH_TERM: Sql = sql!(subjects_with_term!());

pub(crate) mod writes;

/// The key store's queries (rotation, and the key writes PostgreSQL runs in its transaction).
pub(crate) mod keys;

#[cfg(test)]
mod tests {
    #[test]
    fn sqlite_text_numbers_the_same_placeholders() {
        let q = sql!("SELECT a FROM t WHERE b = $2 AND c = $10 AND d = '$x'");
        assert_eq!(
            q.lite,
            "SELECT a FROM t WHERE b = ?2 AND c = ?10 AND d = '$x'"
        );
        assert_eq!(
            q.pg,
            "SELECT a FROM t WHERE b = $2 AND c = $10 AND d = '$x'"
        );
    }
}

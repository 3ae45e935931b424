-- Schema 2: consent decisions (with the latest decision per purpose), relations.
CREATE TABLE IF NOT EXISTS consents (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    subject_id TEXT NOT NULL REFERENCES subjects(id) ON DELETE CASCADE,
    purpose TEXT NOT NULL,
    purpose_version TEXT NOT NULL,
    policy_version TEXT NOT NULL,
    granted INTEGER NOT NULL,
    given_by TEXT NOT NULL,
    capture_channel TEXT NOT NULL,
    contact_channels TEXT NOT NULL,
    guardian_subject_id TEXT REFERENCES subjects(id) ON DELETE SET NULL,
    guardian_details BLOB,
    evidence BLOB,
    evidence_sha256 TEXT,
    recorded_by TEXT NOT NULL,
    at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS consents_by_subject ON consents(subject_id, seq);
CREATE INDEX IF NOT EXISTS consents_by_guardian ON consents(guardian_subject_id);
CREATE TABLE IF NOT EXISTS consent_current (
    purpose TEXT NOT NULL,
    subject_id TEXT NOT NULL REFERENCES subjects(id) ON DELETE CASCADE,
    consent_seq INTEGER NOT NULL,
    PRIMARY KEY (purpose, subject_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS consent_current_by_subject ON consent_current(subject_id);
CREATE TABLE IF NOT EXISTS relations (
    id TEXT PRIMARY KEY,
    subject_id TEXT NOT NULL REFERENCES subjects(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    related_subject_id TEXT NOT NULL REFERENCES subjects(id) ON DELETE CASCADE,
    evidence BLOB,
    evidence_sha256 TEXT,
    recorded_by TEXT NOT NULL,
    at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS relations_by_subject ON relations(subject_id);
CREATE INDEX IF NOT EXISTS relations_by_related ON relations(related_subject_id);

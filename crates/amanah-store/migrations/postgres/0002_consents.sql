-- Schema 2: consent decisions (with the latest decision per purpose), relations.
CREATE TABLE consents (
    seq BIGINT PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    subject_id TEXT NOT NULL REFERENCES subjects(id) ON DELETE CASCADE,
    purpose TEXT NOT NULL,
    purpose_version TEXT NOT NULL,
    policy_version TEXT NOT NULL,
    granted BOOLEAN NOT NULL,
    given_by TEXT NOT NULL,
    capture_channel TEXT NOT NULL,
    contact_channels TEXT NOT NULL,
    guardian_subject_id TEXT REFERENCES subjects(id) ON DELETE SET NULL,
    guardian_details BYTEA,
    evidence BYTEA,
    evidence_sha256 TEXT,
    recorded_by TEXT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX consents_by_subject ON consents(subject_id, seq);
CREATE INDEX consents_by_guardian ON consents(guardian_subject_id);
CREATE TABLE consent_current (
    purpose TEXT NOT NULL,
    subject_id TEXT NOT NULL REFERENCES subjects(id) ON DELETE CASCADE,
    consent_seq BIGINT NOT NULL,
    PRIMARY KEY (purpose, subject_id)
);
CREATE INDEX consent_current_by_subject ON consent_current(subject_id);
CREATE TABLE relations (
    id TEXT PRIMARY KEY,
    subject_id TEXT NOT NULL REFERENCES subjects(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    related_subject_id TEXT NOT NULL REFERENCES subjects(id) ON DELETE CASCADE,
    evidence BYTEA,
    evidence_sha256 TEXT,
    recorded_by TEXT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX relations_by_subject ON relations(subject_id);
CREATE INDEX relations_by_related ON relations(related_subject_id);

-- Schema 1: subjects (with their data keys), encrypted fields, blind-index terms, purposes,
-- the audit log and its head row (present from the start: every write transaction locks it),
-- API keys, policy versions.
CREATE TABLE subjects (
    id TEXT PRIMARY KEY,
    kek_id TEXT NOT NULL,
    key_version BIGINT NOT NULL,
    wrapped_key BYTEA NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE TABLE subject_fields (
    subject_id TEXT NOT NULL REFERENCES subjects(id) ON DELETE CASCADE,
    category TEXT NOT NULL,
    ciphertext BYTEA NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (subject_id, category)
);
CREATE TABLE blind_index (
    category TEXT NOT NULL,
    term BYTEA NOT NULL,
    subject_id TEXT NOT NULL REFERENCES subjects(id) ON DELETE CASCADE,
    PRIMARY KEY (category, term, subject_id)
);
CREATE INDEX blind_index_by_subject ON blind_index(subject_id, category);
CREATE TABLE unique_index (
    category TEXT NOT NULL,
    term BYTEA NOT NULL,
    subject_id TEXT NOT NULL REFERENCES subjects(id) ON DELETE CASCADE,
    PRIMARY KEY (category, term)
);
CREATE INDEX unique_index_by_subject ON unique_index(subject_id, category);
CREATE TABLE subject_purposes (
    subject_id TEXT NOT NULL REFERENCES subjects(id) ON DELETE CASCADE,
    purpose TEXT NOT NULL,
    collected_at BIGINT NOT NULL,
    PRIMARY KEY (subject_id, purpose)
);
CREATE TABLE audit_log (
    seq BIGINT PRIMARY KEY,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    role TEXT NOT NULL,
    action TEXT NOT NULL,
    purpose TEXT,
    basis TEXT,
    outcome TEXT NOT NULL,
    reason TEXT,
    subject_id TEXT,
    fields TEXT NOT NULL,
    policy_version TEXT NOT NULL,
    hash BYTEA NOT NULL
);
CREATE INDEX audit_by_subject ON audit_log(subject_id, seq);
-- One row, present from the start: every write transaction locks it. seq 0 is the empty log.
CREATE TABLE audit_head (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq BIGINT NOT NULL,
    hash BYTEA NOT NULL,
    mac BYTEA NOT NULL
);
INSERT INTO audit_head (id, seq, hash, mac)
    VALUES (1, 0, decode(repeat('00', 32), 'hex'), decode(repeat('00', 32), 'hex'));
CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE TABLE policy_versions (
    seq BIGINT PRIMARY KEY,
    version TEXT NOT NULL,
    source TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    applied_at BIGINT NOT NULL
);

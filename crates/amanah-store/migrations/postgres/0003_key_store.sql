-- Schema 3: data keys in a schema of their own, `amanah_keys` (a dump that excludes it holds
-- ciphertext only), restriction, relationship end, holds, requests, erasures, de-identified records.
CREATE SCHEMA IF NOT EXISTS amanah_keys;
CREATE TABLE amanah_keys.data_keys (
    subject_id TEXT PRIMARY KEY,
    kek_id TEXT NOT NULL,
    key_version BIGINT NOT NULL,
    wrapped_key BYTEA NOT NULL
);
INSERT INTO amanah_keys.data_keys (subject_id, kek_id, key_version, wrapped_key)
    SELECT id, kek_id, key_version, wrapped_key FROM subjects;
ALTER TABLE subjects
    DROP COLUMN kek_id,
    DROP COLUMN key_version,
    DROP COLUMN wrapped_key,
    ADD COLUMN restricted_at BIGINT,
    ADD COLUMN restriction_reason BYTEA,
    ADD COLUMN restricted_by TEXT,
    ADD COLUMN relationship_ended_at BIGINT;
CREATE TABLE holds (
    id TEXT PRIMARY KEY,
    subject_id TEXT NOT NULL REFERENCES subjects(id) ON DELETE CASCADE,
    reason BYTEA NOT NULL,
    until TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    created_by TEXT NOT NULL,
    released_at BIGINT
);
CREATE INDEX holds_by_subject ON holds(subject_id);
CREATE TABLE requests (
    id TEXT PRIMARY KEY,
    subject_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    details BYTEA,
    received_at BIGINT NOT NULL,
    due_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    refusal_reason TEXT,
    refusal_text BYTEA,
    closed_at BIGINT,
    received_by TEXT NOT NULL
);
CREATE INDEX requests_by_status ON requests(status, due_at);
CREATE INDEX requests_by_subject ON requests(subject_id);
CREATE TABLE erasures (
    subject_id TEXT PRIMARY KEY,
    erased_at BIGINT NOT NULL,
    cause TEXT NOT NULL
);
CREATE TABLE deidentified (
    id TEXT PRIMARY KEY,
    purposes TEXT NOT NULL,
    attributes TEXT NOT NULL,
    created_on TEXT NOT NULL
);

-- Schema 3: data keys move to the key store (attached as `keys`, see key_store.sql), the
-- store's id, restriction, relationship end, holds, requests, erasures, de-identified records.
CREATE TABLE IF NOT EXISTS store_meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
INSERT OR IGNORE INTO keys.data_keys (subject_id, kek_id, key_version, wrapped_key)
    SELECT id, kek_id, key_version, wrapped_key FROM subjects;
ALTER TABLE subjects DROP COLUMN kek_id;
ALTER TABLE subjects DROP COLUMN key_version;
ALTER TABLE subjects DROP COLUMN wrapped_key;
ALTER TABLE subjects ADD COLUMN restricted_at INTEGER;
ALTER TABLE subjects ADD COLUMN restriction_reason BLOB;
ALTER TABLE subjects ADD COLUMN restricted_by TEXT;
ALTER TABLE subjects ADD COLUMN relationship_ended_at INTEGER;
CREATE TABLE IF NOT EXISTS holds (
    id TEXT PRIMARY KEY,
    subject_id TEXT NOT NULL REFERENCES subjects(id) ON DELETE CASCADE,
    reason BLOB NOT NULL,
    until TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    created_by TEXT NOT NULL,
    released_at INTEGER
);
CREATE INDEX IF NOT EXISTS holds_by_subject ON holds(subject_id);
CREATE TABLE IF NOT EXISTS requests (
    id TEXT PRIMARY KEY,
    subject_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    details BLOB,
    received_at INTEGER NOT NULL,
    due_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    refusal_reason TEXT,
    refusal_text BLOB,
    closed_at INTEGER,
    received_by TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS requests_by_status ON requests(status, due_at);
CREATE INDEX IF NOT EXISTS requests_by_subject ON requests(subject_id);
CREATE TABLE IF NOT EXISTS erasures (
    subject_id TEXT PRIMARY KEY,
    erased_at INTEGER NOT NULL,
    cause TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS deidentified (
    id TEXT PRIMARY KEY,
    purposes TEXT NOT NULL,
    attributes TEXT NOT NULL,
    created_on TEXT NOT NULL
);

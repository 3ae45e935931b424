-- The key store (a file of its own, attached as `keys`): applied on every open, since the
-- file can be new (restored, or lost) whatever the data file's schema version.
CREATE TABLE IF NOT EXISTS keys.data_keys (
    subject_id TEXT PRIMARY KEY,
    kek_id TEXT NOT NULL,
    key_version INTEGER NOT NULL,
    wrapped_key BLOB NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS keys.meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

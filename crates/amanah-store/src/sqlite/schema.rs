//! The SQLite schema (data file and key store), its migrations, and how connections are opened.

use std::path::{Path, PathBuf};

use amanah_core::audit::head_mac;
use amanah_crypto::audit::{AuditKey, GENESIS};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};

use super::*;
use crate::{integrity, rows, sql, StoreError, StoreResult};

pub(super) const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS subjects (
    id TEXT PRIMARY KEY,
    kek_id TEXT NOT NULL,
    key_version INTEGER NOT NULL,
    wrapped_key BLOB NOT NULL,
    created_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS subject_fields (
    subject_id TEXT NOT NULL REFERENCES subjects(id) ON DELETE CASCADE,
    category TEXT NOT NULL,
    ciphertext BLOB NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (subject_id, category)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS blind_index (
    category TEXT NOT NULL,
    term BLOB NOT NULL,
    subject_id TEXT NOT NULL REFERENCES subjects(id) ON DELETE CASCADE,
    PRIMARY KEY (category, term, subject_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS blind_index_by_subject ON blind_index(subject_id, category);
CREATE TABLE IF NOT EXISTS unique_index (
    category TEXT NOT NULL,
    term BLOB NOT NULL,
    subject_id TEXT NOT NULL REFERENCES subjects(id) ON DELETE CASCADE,
    PRIMARY KEY (category, term)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS unique_index_by_subject ON unique_index(subject_id, category);
CREATE TABLE IF NOT EXISTS subject_purposes (
    subject_id TEXT NOT NULL REFERENCES subjects(id) ON DELETE CASCADE,
    purpose TEXT NOT NULL,
    collected_at INTEGER NOT NULL,
    PRIMARY KEY (subject_id, purpose)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS audit_log (
    seq INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
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
    hash BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_by_subject ON audit_log(subject_id, seq);
CREATE TABLE IF NOT EXISTS audit_head (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq INTEGER NOT NULL,
    hash BLOB NOT NULL,
    mac BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    holder TEXT,
    token_hash TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER,
    mac BLOB
);
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
CREATE TABLE IF NOT EXISTS store_meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS policy_versions (
    seq INTEGER PRIMARY KEY,
    version TEXT NOT NULL,
    source TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    applied_at INTEGER NOT NULL,
    mac BLOB
);
"#;

pub(super) const MIGRATION_3: &str = r#"
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
"#;

/// Schema 5: every API key names the person it was issued to (four eyes count people).
pub(super) const MIGRATION_5: &str = "ALTER TABLE api_keys ADD COLUMN holder TEXT;";

/// Schema 7: the rows that grant access carry a MAC (see `integrity`); the migration seals the
/// rows already there.
pub(super) const MIGRATION_7: &str = "ALTER TABLE api_keys ADD COLUMN mac BLOB;
ALTER TABLE policy_versions ADD COLUMN mac BLOB;";

fn seal_access_rows(tx: &Connection, audit_key: &AuditKey) -> StoreResult<()> {
    for (key, _) in all(tx, sql::UNSEALED_API_KEYS, [], |r| rows::api_key(r))? {
        let mac = integrity::api_key_mac(audit_key, &key);
        tx.execute(sql::SEAL_API_KEY.lite, params![key.id, &mac[..]])
            .map_err(backend)?;
    }
    for (policy, _) in all(tx, sql::UNSEALED_POLICIES, [], |r| rows::policy(r))? {
        let mac = integrity::policy_mac(audit_key, &policy);
        tx.execute(sql::SEAL_POLICY.lite, params![policy.seq, &mac[..]])
            .map_err(backend)?;
    }
    Ok(())
}

pub(super) const KEY_STORE_SCHEMA: &str = r#"
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
"#;

/// Creates `path` empty, readable and writable by its owner only (0600), unless it exists:
/// database files, their journals and backups are never readable by group or others, whatever
/// the umask.
pub(crate) fn create_private(path: &Path) -> StoreResult<()> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StoreError::Backend(format!(
            "cannot create {}: {e}",
            path.display()
        ))),
    }
}

/// Where the key store of the data file at `path` lives: `NAME-keys.db` beside `NAME.db`.
pub fn key_store_path(path: &Path) -> PathBuf {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "amanah".into());
    path.with_file_name(format!("{stem}-keys.db"))
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    /// Migrations at open: both files writable, every commit synced.
    Setup,
    /// The group-commit writer: the data file writable, the key store attached read-only (its
    /// changes go through the key store's own connection, which commits first).
    Writer,
    Reader,
    Checkpointer,
}

/// A `file:` URI naming `path` opened read-only (`?`, `#` and `%` escaped).
fn read_only_uri(path: &Path) -> String {
    let mut uri = String::from("file:");
    for c in path.to_string_lossy().chars() {
        match c {
            '?' | '#' | '%' => uri.push_str(&format!("%{:02X}", c as u32)),
            c => uri.push(c),
        }
    }
    uri.push_str("?mode=ro");
    uri
}

pub(super) fn open_connection(path: &Path, role: Role) -> StoreResult<Connection> {
    let flags = match role {
        Role::Reader => OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        Role::Writer => {
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX
                | OpenFlags::SQLITE_OPEN_URI
        }
        Role::Setup | Role::Checkpointer => {
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX
        }
    };
    let conn = Connection::open_with_flags(path, flags).map_err(backend)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(backend)?;
    // Query plans that do not depend on bound values. Without this, a statement with
    // `LIMIT ?` (searches, listings, audit pages) is recompiled every time it is run with a new
    // value: SQLite folds the bound limit into the plan. Measured: ~10 % of reader CPU.
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )
    .map_err(backend)?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
         PRAGMA foreign_keys = ON;
         PRAGMA temp_store = MEMORY;
         PRAGMA secure_delete = ON;",
    )
    .map_err(backend)?;
    let keys = key_store_path(path);
    let keys = if role == Role::Writer {
        // BEGIN IMMEDIATE then locks the data file only and reads the key store.
        read_only_uri(&keys)
    } else {
        keys.to_string_lossy().into_owned()
    };
    conn.execute("ATTACH DATABASE ?1 AS keys", [keys])
        .map_err(backend)?;
    conn.execute_batch(
        "PRAGMA keys.journal_mode = WAL;
         PRAGMA keys.synchronous = FULL;
         PRAGMA keys.secure_delete = ON;",
    )
    .map_err(backend)?;
    if role == Role::Writer {
        // Readers keep SQLite's default cache: a read transaction that follows any write
        // starts from an empty cache anyway.
        conn.pragma_update(None, "cache_size", -WRITER_CACHE_KIB)
            .map_err(backend)?;
        // The syncer fsyncs the data WAL after each commit, before any reply; checkpoints
        // are the checkpointer's (see the module doc). The key store is written by its own
        // connection (`commit::KeyStore`), which sets the same for its file.
        conn.execute_batch(
            "PRAGMA synchronous = NORMAL;
             PRAGMA wal_autocheckpoint = 0;",
        )
        .map_err(backend)?;
        // Reusing the WAL keeps its size; capping it at a quarter of the checkpoint threshold
        // lets the checkpointer read "frames written since the last restart" from its size.
        conn.pragma_update(
            Some("main"),
            "journal_size_limit",
            CHECKPOINT_BYTES as i64 / 4,
        )
        .map_err(backend)?;
    }
    Ok(conn)
}

pub(super) fn migrate(conn: &mut Connection, audit_key: &AuditKey) -> StoreResult<()> {
    let found: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(backend)?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    let tx = conn.transaction().map_err(backend)?;
    tx.execute_batch(KEY_STORE_SCHEMA).map_err(backend)?;
    if found < SCHEMA_VERSION {
        tx.execute_batch(SCHEMA).map_err(backend)?;
        if found < 3 {
            tx.execute_batch(MIGRATION_3).map_err(backend)?;
        }
        if found < 4 {
            tx.execute_batch(accountability::MIGRATION_4)
                .map_err(backend)?;
        }
        if (1..5).contains(&found) {
            tx.execute_batch(MIGRATION_5).map_err(backend)?;
        }
        if found < 6 {
            migrate_6(&tx, audit_key)?;
        }
        if (1..7).contains(&found) {
            tx.execute_batch(MIGRATION_7).map_err(backend)?;
            seal_access_rows(&tx, audit_key)?;
        }
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)
            .map_err(backend)?;
    }
    // Both files carry the vault's id: a key store from another vault is never used.
    let data_id: Option<String> = tx
        .query_row(
            "SELECT value FROM main.store_meta WHERE key = 'store_id'",
            [],
            |r| r.get(0),
        )
        .optional()
        .map_err(backend)?;
    let keys_id: Option<String> = tx
        .query_row(
            "SELECT value FROM keys.meta WHERE key = 'store_id'",
            [],
            |r| r.get(0),
        )
        .optional()
        .map_err(backend)?;
    match (data_id, keys_id) {
        (Some(d), Some(k)) if d != k => return Err(StoreError::Backend(
            "the key store belongs to another vault (its store id differs from the data file's)"
                .into(),
        )),
        (Some(_), Some(_)) => {}
        (Some(d), None) => {
            let has_subjects: bool = tx
                .query_row("SELECT EXISTS (SELECT 1 FROM subjects)", [], |r| r.get(0))
                .map_err(backend)?;
            if has_subjects {
                return Err(StoreError::Backend(
                    "the key store is missing or empty: restore it (`amanah restore --key-store`) before opening the vault".into(),
                ));
            }
            tx.execute(
                "INSERT INTO keys.meta (key, value) VALUES ('store_id', ?1)",
                [d],
            )
            .map_err(backend)?;
        }
        (None, Some(k)) => {
            tx.execute(
                "INSERT INTO main.store_meta (key, value) VALUES ('store_id', ?1)",
                [k],
            )
            .map_err(backend)?;
        }
        (None, None) => {
            let id = uuid::Uuid::new_v4().to_string();
            tx.execute(
                "INSERT INTO main.store_meta (key, value) VALUES ('store_id', ?1)",
                [&id],
            )
            .map_err(backend)?;
            tx.execute(
                "INSERT INTO keys.meta (key, value) VALUES ('store_id', ?1)",
                [&id],
            )
            .map_err(backend)?;
        }
    }
    tx.commit().map_err(backend)?;
    Ok(())
}

/// Schema 6: comma-joined lists become JSON arrays holding exactly the list that schema 5 read
/// back (so every old audit entry still matches its MAC), and a store whose log was never
/// written gets its signed genesis head: from now on a missing head is an error.
pub(super) fn migrate_6(tx: &Connection, audit_key: &AuditKey) -> StoreResult<()> {
    for (table, key, column, categories) in crate::lists::LIST_COLUMNS {
        let rows: Vec<(rusqlite::types::Value, String)> = tx
            .prepare(&format!("SELECT {key}, {column} FROM {table}"))
            .and_then(|mut st| {
                st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<rusqlite::Result<_>>()
            })
            .map_err(backend)?;
        let mut update = tx
            .prepare(&format!(
                "UPDATE {table} SET {column} = ?1 WHERE {key} = ?2"
            ))
            .map_err(backend)?;
        for (id, stored) in rows {
            update
                .execute(params![
                    crate::lists::convert_legacy(&stored, *categories),
                    id
                ])
                .map_err(backend)?;
        }
    }
    // Entries that schema 5 could not read back (a comma inside a name): their MAC says which
    // list was written.
    let recovered: Vec<(i64, String)> = {
        let mut st = tx
            .prepare(
                "SELECT seq, at, actor, role, action, purpose, basis, outcome, reason, subject_id,
                        fields, policy_version, hash
                 FROM audit_log ORDER BY seq",
            )
            .map_err(backend)?;
        let mut rows = st.query([]).map_err(backend)?;
        let mut out = Vec::new();
        let mut previous = (0u64, GENESIS);
        while let Some(row) = rows.next().map_err(backend)? {
            let record = rows::audit(row)?;
            if record.entry.fields.len() != 1 && previous.0 + 1 == record.seq {
                if let Some(fields) = crate::lists::recover_fields(audit_key, &record, &previous.1)
                {
                    out.push((record.seq as i64, crate::lists::encode(&fields)));
                }
            }
            previous = (record.seq, record.hash);
        }
        out
    };
    for (seq, fields) in recovered {
        tracing::info!(seq, "audit entry's field list recovered from its MAC");
        tx.execute(
            "UPDATE audit_log SET fields = ?1 WHERE seq = ?2",
            params![fields, seq],
        )
        .map_err(backend)?;
    }
    let empty: bool = tx
        .query_row(
            "SELECT NOT EXISTS (SELECT 1 FROM audit_log) AND NOT EXISTS (SELECT 1 FROM audit_head)",
            [],
            |r| r.get(0),
        )
        .map_err(backend)?;
    if empty {
        let mac = head_mac(audit_key, 0, &GENESIS);
        tx.execute(
            "INSERT INTO audit_head (id, seq, hash, mac) VALUES (1, 0, ?1, ?2)",
            params![&GENESIS[..], &mac[..]],
        )
        .map_err(backend)?;
    }
    Ok(())
}

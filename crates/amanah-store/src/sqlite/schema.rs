//! How connections are opened, and the migrations (`crate::migrations`) applied to the data
//! file and the key store.

use std::path::{Path, PathBuf};

use amanah_core::audit::head_mac;
use amanah_crypto::audit::{AuditKey, GENESIS};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};

use super::*;
use crate::sql::{self, writes};
use crate::{integrity, migrations, rows, StoreError, StoreResult};

/// The key store's tables, applied on every open: the file can be new (restored, or lost)
/// whatever the data file's schema version.
const KEY_STORE_SCHEMA: &str = include_str!("../../migrations/sqlite/key_store.sql");

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
    for step in migrations::after(found) {
        if step.version == migrations::FIELDS_IN_SUBJECT_ROW {
            let reshaped: i64 = tx
                .query_row(migrations::SUBJECT_ROW_HAS_FIELDS.lite, [], |r| r.get(0))
                .map_err(backend)?;
            if reshaped > 0 {
                continue;
            }
        }
        tx.execute_batch(step.sqlite).map_err(backend)?;
        if step.version == migrations::LISTS_AS_JSON {
            migrate_6(&tx, audit_key)?;
        }
        if step.version == migrations::ACCESS_MACS {
            seal_access_rows(&tx, audit_key)?;
        }
    }
    if found < SCHEMA_VERSION {
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

/// Schema 6's code: comma-joined lists become JSON arrays holding exactly the list that schema 5 read
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

/// Schema 7's code: the rows that grant access, written before it, sealed with their MAC.
fn seal_access_rows(tx: &Connection, audit_key: &AuditKey) -> StoreResult<()> {
    for (key, _) in rows_of(tx, sql::UNSEALED_API_KEYS, &[], rows::api_key)? {
        let mac = integrity::api_key_mac(audit_key, &key);
        tx.execute(writes::SEAL_API_KEY.lite, params![key.id, &mac[..]])
            .map_err(backend)?;
    }
    for (policy, _) in rows_of(tx, sql::UNSEALED_POLICIES, &[], rows::policy)? {
        let mac = integrity::policy_mac(audit_key, &policy);
        tx.execute(writes::SEAL_POLICY.lite, params![policy.seq, &mac[..]])
            .map_err(backend)?;
    }
    Ok(())
}

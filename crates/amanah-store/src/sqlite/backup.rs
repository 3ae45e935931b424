//! Backups that forget erased people.
//!
//! The data file holds ciphertexts; the key store (`NAME-keys.db`) holds the wrapped data keys.
//! A data backup is a snapshot of the data file only, so it never carries a key: restoring it
//! brings back ciphertexts, and every subject whose key the live key store no longer holds
//! (erased after the backup) is purged on restore. Key-store snapshots are for losing the key
//! store itself; they carry their date and are refused once older than the caller's limit, so
//! an erased person's key outlives the erasure in backups for a bounded time only. Restoring one
//! drops the keys of every subject the data file records as erased.

use std::path::Path;

use amanah_core::audit::{AuditDraft, AuditRecord};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};

use super::recovery::RESTORE_PENDING;
use super::rights::shred_keyless;
use super::{append, backend, create_private, key_store_path, SqliteStore, SCHEMA_VERSION};
use crate::{StoreError, StoreResult};

/// What a backup file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackupKind {
    Data,
    KeyStore,
}

/// Result of reconciling after a restore.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Reconciled {
    /// Subjects purged because the key store no longer holds their key.
    pub purged_subjects: u64,
    /// Keys dropped because the data file records their subject as erased.
    pub dropped_keys: u64,
    /// Subjects without a key after a key-store restore (created after that snapshot).
    pub keyless_subjects: u64,
}

fn open_ro(path: &Path) -> StoreResult<Connection> {
    Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(backend)
}

fn meta(conn: &Connection, table: &str, key: &str) -> StoreResult<Option<String>> {
    let exists: bool = conn
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1)",
            [table],
            |r| r.get(0),
        )
        .map_err(backend)?;
    if !exists {
        return Ok(None);
    }
    conn.query_row(
        &format!("SELECT value FROM {table} WHERE key = ?1"),
        [key],
        |r| r.get(0),
    )
    .optional()
    .map_err(backend)
}

/// Identifies a backup file: its kind, store id and (for key-store snapshots) when taken.
pub fn inspect_backup(path: &Path) -> StoreResult<(BackupKind, String, Option<i64>)> {
    let conn = open_ro(path)
        .map_err(|_| StoreError::Backend(format!("{} is not an Amanah backup", path.display())))?;
    if let Some(id) = meta(&conn, "store_meta", "store_id")? {
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(backend)?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::SchemaTooNew {
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        return Ok((BackupKind::Data, id, None));
    }
    if let Some(id) = meta(&conn, "meta", "store_id")? {
        let taken = meta(&conn, "meta", "snapshot_taken_at")?.and_then(|t| t.parse().ok());
        return Ok((BackupKind::KeyStore, id, taken));
    }
    Err(StoreError::Backend(format!(
        "{} is not an Amanah backup",
        path.display()
    )))
}

fn live_store_id(data_path: &Path) -> StoreResult<Option<String>> {
    let keys = key_store_path(data_path);
    if keys.exists() {
        if let Some(id) = meta(&open_ro(&keys)?, "meta", "store_id")? {
            return Ok(Some(id));
        }
    }
    if data_path.exists() {
        return meta(&open_ro(data_path)?, "store_meta", "store_id");
    }
    Ok(None)
}

/// Marks the data file at `path` as restored and not yet reconciled: crash recovery leaves it
/// to the reconciliation, which clears the mark.
fn mark_restore_pending(path: &Path) -> StoreResult<()> {
    let conn = Connection::open(path).map_err(backend)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(backend)?;
    conn.execute(
        "INSERT INTO store_meta (key, value) VALUES (?1, '1')
         ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        [RESTORE_PENDING],
    )
    .map_err(backend)?;
    // The two files no longer come from one history: the next recovery checks every subject.
    super::ledger::forget(&conn)
}

fn clear_restore_pending(tx: &Connection) -> StoreResult<()> {
    tx.execute(
        "DELETE FROM main.store_meta WHERE key = ?1",
        [RESTORE_PENDING],
    )
    .map_err(backend)?;
    Ok(())
}

/// Replaces `target` (and its WAL files) with a copy of `backup`; a data file is marked as
/// restored (see [`mark_restore_pending`]) before it takes the target's place.
fn replace_file(backup: &Path, target: &Path, kind: BackupKind) -> StoreResult<()> {
    let io = |e: std::io::Error| StoreError::Backend(format!("{}: {e}", target.display()));
    for suffix in ["-wal", "-shm"] {
        let side = target.with_file_name(format!(
            "{}{suffix}",
            target
                .file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default()
        ));
        if side.exists() {
            std::fs::remove_file(&side).map_err(io)?;
        }
    }
    let tmp = target.with_extension("restore-tmp");
    std::fs::copy(backup, &tmp).map_err(io)?;
    if kind == BackupKind::Data {
        mark_restore_pending(&tmp)?;
    }
    std::fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(io)?;
    std::fs::rename(&tmp, target).map_err(io)
}

/// Puts a data backup in place of the data file at `data_path` (the server must be stopped).
/// Open the store afterwards and call [`SqliteStore::reconcile_after_data_restore`].
pub fn restore_data(data_path: &Path, backup: &Path) -> StoreResult<()> {
    let (kind, id, _) = inspect_backup(backup)?;
    if kind != BackupKind::Data {
        return Err(StoreError::Backend(
            "this is a key-store snapshot: restore it with --key-store".into(),
        ));
    }
    if let Some(live) = live_store_id(data_path)? {
        if live != id {
            return Err(StoreError::Backend(
                "this backup belongs to another vault (its store id differs)".into(),
            ));
        }
    }
    replace_file(backup, data_path, BackupKind::Data)
}

/// Puts a key-store snapshot in place of the key store (the server must be stopped), refusing
/// snapshots taken more than `max_age_micros` before `now_micros`. Open the store afterwards and
/// call [`SqliteStore::reconcile_after_key_restore`].
pub fn restore_key_store(
    data_path: &Path,
    backup: &Path,
    now_micros: i64,
    max_age_micros: i64,
) -> StoreResult<()> {
    let (kind, id, taken) = inspect_backup(backup)?;
    if kind != BackupKind::KeyStore {
        return Err(StoreError::Backend(
            "this is a data backup: restore it without --key-store".into(),
        ));
    }
    let Some(taken) = taken else {
        return Err(StoreError::Backend(
            "this key-store snapshot carries no date: it cannot be checked against the key-backup limit".into(),
        ));
    };
    if now_micros.saturating_sub(taken) > max_age_micros {
        return Err(StoreError::Backend(format!(
            "this key-store snapshot is {} days old, beyond the {}-day limit: erased people's keys must not come back",
            (now_micros - taken) / 86_400_000_000,
            max_age_micros / 86_400_000_000
        )));
    }
    if data_path.exists() {
        if let Some(data_id) = meta(&open_ro(data_path)?, "store_meta", "store_id")? {
            if data_id != id {
                return Err(StoreError::Backend(
                    "this key-store snapshot belongs to another vault (its store id differs)"
                        .into(),
                ));
            }
        }
    }
    if data_path.exists() {
        mark_restore_pending(data_path)?;
    }
    replace_file(backup, &key_store_path(data_path), BackupKind::KeyStore)
}

impl SqliteStore {
    /// A consistent snapshot of the data file alone (ciphertexts, index terms, audit; no data
    /// keys), taken online. `out` must not exist.
    pub async fn backup_data(&self, out: &Path) -> StoreResult<()> {
        refuse_existing(out)?;
        create_private(out)?;
        let out = out.to_string_lossy().into_owned();
        self.on_reader(move |conn| {
            conn.execute("VACUUM main INTO ?1", [out])
                .map(|_| ())
                .map_err(backend)
        })
        .await
    }

    /// A consistent snapshot of the key store, dated `taken_at_micros`. `out` must not exist.
    pub async fn backup_key_store(&self, out: &Path, taken_at_micros: i64) -> StoreResult<()> {
        refuse_existing(out)?;
        create_private(out)?;
        let path = out.to_owned();
        let target = out.to_string_lossy().into_owned();
        self.on_reader(move |conn| {
            conn.execute("VACUUM keys INTO ?1", [target])
                .map(|_| ())
                .map_err(backend)
        })
        .await?;
        let conn = Connection::open(&path).map_err(backend)?;
        conn.execute(
            "INSERT INTO meta (key, value) VALUES ('snapshot_taken_at', ?1)
             ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            [taken_at_micros.to_string()],
        )
        .map_err(backend)?;
        Ok(())
    }

    /// After a data restore: purges every subject whose key the live key store does not hold
    /// (erased after the backup was taken) and records why.
    pub async fn reconcile_after_data_restore(
        &self,
        at_micros: i64,
        mut audit: AuditDraft,
    ) -> StoreResult<(Reconciled, AuditRecord)> {
        self.write_with(move |tx, chain| {
            let purged = shred_keyless(tx, chain, at_micros)?;
            clear_restore_pending(tx)?;
            chain.checkpoint = true;
            audit.reason = Some(format!(
                "data backup restored; {purged} subjects without a key (erased after the backup) purged"
            ));
            let record = append(tx, chain, audit)?;
            Ok((
                Reconciled {
                    purged_subjects: purged,
                    ..Reconciled::default()
                },
                record,
            ))
        })
        .await
    }

    /// After a key-store restore: drops the keys of subjects the data file records as erased
    /// and reports subjects left without a key.
    pub async fn reconcile_after_key_restore(
        &self,
        mut audit: AuditDraft,
    ) -> StoreResult<(Reconciled, AuditRecord)> {
        self.write_with(move |tx, chain| {
            // Staged like any key change: the key store commits first.
            let drop: Vec<String> = tx
                .prepare(
                    "SELECT subject_id FROM keys.data_keys WHERE subject_id IN (SELECT subject_id FROM erasures)
                        OR subject_id NOT IN (SELECT id FROM subjects)",
                )
                .and_then(|mut st| {
                    st.query_map([], |r| r.get(0))
                        .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                })
                .map_err(backend)?;
            for id in &drop {
                chain.keys.delete(id);
            }
            let dropped = drop.len() as u64;
            let keyless: i64 = tx
                .query_row(
                    "SELECT COUNT(*) FROM subjects s WHERE NOT EXISTS
                        (SELECT 1 FROM keys.data_keys k WHERE k.subject_id = s.id)",
                    params![],
                    |r| r.get(0),
                )
                .map_err(backend)?;
            clear_restore_pending(tx)?;
            chain.checkpoint = true;
            audit.reason = Some(format!(
                "key store restored; {dropped} keys of erased subjects dropped; {keyless} subjects have no key"
            ));
            let record = append(tx, chain, audit)?;
            Ok((
                Reconciled {
                    dropped_keys: dropped,
                    keyless_subjects: keyless as u64,
                    ..Reconciled::default()
                },
                record,
            ))
        })
        .await
    }
}

/// A backup never overwrites: `VACUUM INTO` would fill an existing empty file.
fn refuse_existing(out: &Path) -> StoreResult<()> {
    if out.exists() {
        return Err(StoreError::Backend(format!(
            "{} exists already: a backup never overwrites a file",
            out.display()
        )));
    }
    Ok(())
}

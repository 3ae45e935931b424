//! Crash recovery of the SQLite store: the states a crash can leave between the key store's
//! commit and the data file's (and those the older, data-first order left) are crafted on a
//! closed store, and the next open settles them, audited, once.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

mod common;

use amanah_core::audit::{AuditAction, AuditRecord, ChainVerifier};
use amanah_crypto::KeyRing;
use amanah_store::{key_store_path, RightsStore, SqliteStore, Store, StoreError};
use common::{draft, subject};
use rusqlite::{params, Connection};

async fn entries(store: &SqliteStore) -> Vec<AuditRecord> {
    store.audit_entries(None, 0, 1 << 20).await.unwrap()
}

async fn verify(store: &SqliteStore, ring: &KeyRing) {
    let key = ring.audit_key();
    let mut v = ChainVerifier::new(&key);
    for r in entries(store).await {
        v.push(&r).unwrap();
    }
    v.finish(store.audit_head().await.unwrap()).unwrap();
}

/// The key-store rows, read behind the store's back.
fn keys_held(db: &Path) -> Vec<String> {
    let conn = Connection::open(key_store_path(db)).unwrap();
    let mut st = conn
        .prepare("SELECT subject_id FROM data_keys ORDER BY subject_id")
        .unwrap();
    let ids = st
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<Vec<String>, _>>()
        .unwrap();
    ids
}

/// Drops the data file's ledger token, as a restore does (or as a store written before the
/// ledger has none).
fn forget_ledger(db: &Path) {
    Connection::open(db)
        .unwrap()
        .execute("DELETE FROM store_meta WHERE key = 'ledger'", [])
        .unwrap();
}

/// Lets the store's threads finish with the files before they are edited.
async fn close(store: SqliteStore) {
    drop(store);
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_settles_half_committed_writes_once_and_audits_them() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("a.db");
    let ring = KeyRing::generate().unwrap();
    let store = SqliteStore::open(&db, ring.audit_key()).unwrap();
    for (id, term) in [
        ("keyless", [1; 32]),
        ("erasing", [2; 32]),
        ("erased", [3; 32]),
        ("kept", [4; 32]),
    ] {
        store
            .insert_subject(
                subject(&ring, id, term),
                draft(AuditAction::SubjectCreate, Some(id)),
            )
            .await
            .unwrap();
    }
    let erased_key: (String, i64, Vec<u8>) = {
        let conn = Connection::open(key_store_path(&db)).unwrap();
        conn.query_row(
            "SELECT kek_id, key_version, wrapped_key FROM data_keys WHERE subject_id = 'erased'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap()
    };
    store
        .erase_subject(
            "erased",
            5,
            "request r1",
            draft(AuditAction::SubjectErase, Some("erased")),
        )
        .await
        .unwrap();
    let before = entries(&store).await.len();
    close(store).await;

    // A store as a binary before the batch ledger left it: no ledger, so recovery checks every
    // subject (a crash under the ledger is `the_ledger_limits_recovery_to_unfinished_batches`).
    forget_ledger(&db);
    // What a crash leaves, crafted on the closed files:
    // - "keyless": rows and audit entry committed, key not (the older data-first order);
    // - "erasing": an erasure whose key commit went through and whose data commit did not;
    // - "erased": erased in the data file, its key surviving (the older order);
    // - "orphan": a key whose create never committed its rows.
    {
        let keys = Connection::open(key_store_path(&db)).unwrap();
        keys.execute(
            "DELETE FROM data_keys WHERE subject_id IN ('keyless', 'erasing')",
            [],
        )
        .unwrap();
        keys.execute(
            "INSERT INTO data_keys (subject_id, kek_id, key_version, wrapped_key) VALUES ('erased', ?1, ?2, ?3)",
            params![erased_key.0, erased_key.1, erased_key.2],
        )
        .unwrap();
        keys.execute(
            "INSERT INTO data_keys (subject_id, kek_id, key_version, wrapped_key) VALUES ('orphan', ?1, ?2, ?3)",
            params![erased_key.0, erased_key.1, vec![7u8; 60]],
        )
        .unwrap();
    }
    assert_eq!(keys_held(&db), ["erased", "kept", "orphan"]);

    let store = SqliteStore::open(&db, ring.audit_key()).unwrap();
    assert_eq!(
        keys_held(&db),
        ["kept"],
        "no key without rows, none of an erased subject"
    );
    for id in ["keyless", "erasing"] {
        assert!(store.load_subject(id).await.unwrap().is_none());
        assert!(
            store.erased_at(id).await.unwrap().is_some(),
            "{id} is tombstoned: reads answer 410"
        );
    }
    assert!(store.load_subject("kept").await.unwrap().is_some());
    assert_eq!(store.erased_at("erased").await.unwrap(), Some(5));
    // The purged subjects' unique values are free again.
    for (id, term) in [("again1", [1; 32]), ("again2", [2; 32])] {
        store
            .insert_subject(
                subject(&ring, id, term),
                draft(AuditAction::SubjectCreate, Some(id)),
            )
            .await
            .unwrap();
    }
    // Each settlement has its entry; no entry holds anything but ids and fixed texts.
    let all = entries(&store).await;
    let recovery: Vec<&AuditRecord> = all[before..]
        .iter()
        .filter(|r| r.entry.action.as_str().starts_with("recovery."))
        .collect();
    let mut seen: Vec<(&str, Option<&str>)> = recovery
        .iter()
        .map(|r| (r.entry.action.as_str(), r.entry.subject.as_deref()))
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            ("recovery.orphan_keys", None),
            ("recovery.purge", Some("erasing")),
            ("recovery.purge", Some("keyless")),
            ("recovery.shred_key", Some("erased")),
        ]
    );
    for r in &recovery {
        assert_eq!(r.entry.actor, "recovery");
        assert!(r.entry.fields.is_empty());
        assert!(r.entry.purpose.is_none());
    }
    let orphans = recovery
        .iter()
        .find(|r| r.entry.action == AuditAction::RecoveryOrphanKeys)
        .unwrap();
    assert!(orphans
        .entry
        .reason
        .as_deref()
        .unwrap()
        .contains("1 data keys without a subject"));
    verify(&store, &ring).await;
    // The destroyed keys' bytes are gone from the files (WALs truncated, pages zeroed).
    for f in std::fs::read_dir(dir.path()).unwrap() {
        let bytes = std::fs::read(f.unwrap().path()).unwrap();
        assert!(!bytes
            .windows(erased_key.2.len())
            .any(|w| w == erased_key.2.as_slice()));
    }
    let settled = entries(&store).await.len();
    close(store).await;

    // A second open finds nothing to do.
    let store = SqliteStore::open(&db, ring.audit_key()).unwrap();
    assert_eq!(entries(&store).await.len(), settled);
    assert_eq!(keys_held(&db), ["again1", "again2", "kept"]);
    verify(&store, &ring).await;
}

/// A job that fails never commits its key; a data commit that fails after the key commit went
/// through is settled at once, so orphan keys do not accumulate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_writes_leave_no_key_behind() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("a.db");
    let ring = KeyRing::generate().unwrap();
    let store = SqliteStore::open(&db, ring.audit_key()).unwrap();
    store
        .insert_subject(
            subject(&ring, "a", [1; 32]),
            draft(AuditAction::SubjectCreate, Some("a")),
        )
        .await
        .unwrap();
    // A unique conflict: the job fails in its savepoint, before any key is committed.
    let conflict = store
        .insert_subject(
            subject(&ring, "b", [1; 32]),
            draft(AuditAction::SubjectCreate, Some("b")),
        )
        .await;
    assert!(
        matches!(conflict, Err(StoreError::Unique { .. })),
        "{conflict:?}"
    );
    assert_eq!(keys_held(&db), ["a"]);
    close(store).await;

    // A data commit that fails after the key store committed: a deferred foreign key, checked
    // only at COMMIT, breaks the data transaction of any create of an id starting with "trap".
    {
        let conn = Connection::open(&db).unwrap();
        conn.execute_batch(
            "CREATE TABLE trap (subject_id TEXT REFERENCES nowhere(id) DEFERRABLE INITIALLY DEFERRED);
             CREATE TABLE nowhere (id TEXT PRIMARY KEY);
             CREATE TRIGGER trap_create AFTER INSERT ON subjects WHEN NEW.id LIKE 'trap%'
             BEGIN INSERT INTO trap (subject_id) VALUES (NEW.id); END;",
        )
        .unwrap();
    }
    let store = SqliteStore::open(&db, ring.audit_key()).unwrap();
    let failed = store
        .insert_subject(
            subject(&ring, "trap1", [2; 32]),
            draft(AuditAction::SubjectCreate, Some("trap1")),
        )
        .await;
    assert!(matches!(failed, Err(StoreError::Backend(_))), "{failed:?}");
    assert!(store.load_subject("trap1").await.unwrap().is_none());
    assert_eq!(keys_held(&db), ["a"], "the key committed first was removed");
    let last = entries(&store).await.pop().unwrap();
    assert_eq!(last.entry.action.as_str(), "recovery.orphan_keys");
    // The store goes on writing, and its chain verifies.
    store
        .insert_subject(
            subject(&ring, "c", [3; 32]),
            draft(AuditAction::SubjectCreate, Some("c")),
        )
        .await
        .unwrap();
    assert_eq!(keys_held(&db), ["a", "c"]);
    verify(&store, &ring).await;
}

/// Recovery at open checks only the batches whose data commit is missing: a crash's key-store
/// batch, its ledger row without a data-file row, is settled; a key the ledger does not name is
/// not looked at (no scan of every subject); a file put back by a restore (no ledger token) is
/// checked whole, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ledger_limits_recovery_to_unfinished_batches() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("a.db");
    let ring = KeyRing::generate().unwrap();
    let store = SqliteStore::open(&db, ring.audit_key()).unwrap();
    for (id, term) in [("a", [1; 32]), ("b", [2; 32])] {
        store
            .insert_subject(
                subject(&ring, id, term),
                draft(AuditAction::SubjectCreate, Some(id)),
            )
            .await
            .unwrap();
    }
    close(store).await;
    let ledger_rows = |table: &str, file: &Path| -> usize {
        Connection::open(file)
            .unwrap()
            .query_row(
                &format!("SELECT COUNT(*) FROM {table} WHERE key LIKE 'batch:%'"),
                [],
                |r| r.get(0),
            )
            .unwrap()
    };
    // Finished batches are pruned as the store writes: a row or so in each file, not one per
    // batch.
    assert!(ledger_rows("meta", &key_store_path(&db)) <= 1);
    assert!(ledger_rows("store_meta", &db) <= 1);

    // A crash after the key-store commit of a create: its key and its batch row, no data row.
    // Beside it, a key the ledger does not name.
    {
        let keys = Connection::open(key_store_path(&db)).unwrap();
        for id in ["crashed", "unnamed"] {
            keys.execute(
                "INSERT INTO data_keys (subject_id, kek_id, key_version, wrapped_key) VALUES (?1, 'k', 1, ?2)",
                params![id, vec![7u8; 60]],
            )
            .unwrap();
        }
        keys.execute(
            "INSERT INTO meta (key, value) VALUES ('batch:crash', '[\"crashed\"]')",
            [],
        )
        .unwrap();
    }
    let store = SqliteStore::open(&db, ring.audit_key()).unwrap();
    assert_eq!(
        keys_held(&db),
        ["a", "b", "unnamed"],
        "the unfinished batch's key is removed; nothing else was looked at"
    );
    let last = entries(&store).await.pop().unwrap();
    assert_eq!(last.entry.action, AuditAction::RecoveryOrphanKeys);
    assert!(last
        .entry
        .reason
        .as_deref()
        .unwrap()
        .contains("1 data keys without a subject"));
    let settled = entries(&store).await.len();
    close(store).await;
    let store = SqliteStore::open(&db, ring.audit_key()).unwrap();
    assert_eq!(entries(&store).await.len(), settled, "settled once");
    close(store).await;

    // A restored file: the ledger is not trusted, every subject is checked, then it starts again.
    forget_ledger(&db);
    let store = SqliteStore::open(&db, ring.audit_key()).unwrap();
    assert_eq!(keys_held(&db), ["a", "b"]);
    store
        .insert_subject(
            subject(&ring, "c", [3; 32]),
            draft(AuditAction::SubjectCreate, Some("c")),
        )
        .await
        .unwrap();
    verify(&store, &ring).await;
    close(store).await;
    {
        let keys = Connection::open(key_store_path(&db)).unwrap();
        keys.execute(
            "INSERT INTO data_keys (subject_id, kek_id, key_version, wrapped_key) VALUES ('late', 'k', 1, ?1)",
            [vec![7u8; 60]],
        )
        .unwrap();
    }
    let store = SqliteStore::open(&db, ring.audit_key()).unwrap();
    assert_eq!(
        keys_held(&db),
        ["a", "b", "c", "late"],
        "trusted again after the whole-store check"
    );
    verify(&store, &ring).await;
}

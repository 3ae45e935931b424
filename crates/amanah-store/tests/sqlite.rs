//! The SQLite store's contract: group commit keeps each job atomic and the chain intact.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use amanah_core::audit::{AuditDraft, ChainVerifier, Outcome};
use amanah_crypto::{DataKey, KeyRing};
use amanah_store::{BulkInsert, FieldWrite, NewSubject, SqliteStore, Store, StoreError};

fn draft(action: &str, subject: Option<&str>) -> AuditDraft {
    AuditDraft {
        at_micros: 1,
        actor: "k".into(),
        role: "admin".into(),
        action: action.into(),
        purpose: Some("p".into()),
        basis: Some("contract".into()),
        outcome: Outcome::Allowed,
        reason: None,
        subject: subject.map(str::to_owned),
        fields: vec!["email".into()],
        policy_version: "v".into(),
    }
}

fn subject(ring: &KeyRing, id: &str, term: [u8; 32]) -> NewSubject {
    let key = DataKey::generate(1).unwrap();
    NewSubject {
        id: id.into(),
        wrapped_key: ring.wrap(&key, id).unwrap(),
        created_at_micros: 1,
        purpose: "p".into(),
        fields: vec![FieldWrite {
            category: "email".into(),
            ciphertext: key.seal_field(id, "email", b"x").unwrap(),
            index_term: Some(term),
            unique: true,
        }],
    }
}

async fn verify(store: &SqliteStore, ring: &KeyRing) -> u64 {
    let key = ring.audit_key();
    let mut v = ChainVerifier::new(&key);
    for r in store.audit_entries(None, 0, usize::MAX >> 1).await.unwrap() {
        v.push(&r).unwrap();
    }
    let n = v.count();
    v.finish(store.audit_head().await.unwrap()).unwrap();
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_commit_atomically_and_the_chain_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let ring = Arc::new(KeyRing::generate().unwrap());
    let store = SqliteStore::open(&dir.path().join("a.db"), ring.audit_key()).unwrap();

    // 200 creates at once, every 10th reusing a unique term already taken: those must fail
    // alone, inside batches whose other jobs commit.
    let mut tasks = Vec::new();
    for i in 0..200u8 {
        let store = store.clone();
        let ring = ring.clone();
        tasks.push(tokio::spawn(async move {
            let term = if i % 10 == 9 { [0u8; 32] } else { [i; 32] };
            let id = format!("s{i}");
            store
                .insert_subject(
                    subject(&ring, &id, term),
                    draft("subject.create", Some(&id)),
                )
                .await
        }));
    }
    let mut ok = 0;
    let mut unique = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(StoreError::Unique { category }) => {
                assert_eq!(category, "email");
                unique += 1
            }
            Err(e) => panic!("{e}"),
        }
    }
    // Term [0; 32] is taken by s0 (or by whichever of its users ran first): 20 users, 1 wins.
    assert_eq!(unique, 20);
    assert_eq!(ok, 180);
    assert_eq!(
        verify(&store, &ring).await,
        180,
        "failed jobs leave no audit entry"
    );
    for i in 0..200u8 {
        let loaded = store.load_subject(&format!("s{i}")).await.unwrap();
        let term = if i % 10 == 9 { [0u8; 32] } else { [i; 32] };
        let found = store.find_subjects("email", term, 10).await.unwrap();
        if loaded.is_some() {
            assert!(found.iter().any(|s| s.id == format!("s{i}")));
        } else {
            assert!(
                found.iter().all(|s| s.id != format!("s{i}")),
                "a failed create left index rows"
            );
        }
    }
}

#[tokio::test]
async fn the_chain_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.db");
    let ring = KeyRing::generate().unwrap();
    {
        let store = SqliteStore::open(&path, ring.audit_key()).unwrap();
        store
            .append_audit(vec![draft("a", None), draft("b", None)])
            .await
            .unwrap();
    }
    let store = SqliteStore::open(&path, ring.audit_key()).unwrap();
    let rec = store.append_audit(vec![draft("c", None)]).await.unwrap();
    assert_eq!(rec[0].seq, 3);
    assert_eq!(verify(&store, &ring).await, 3);
}

#[tokio::test]
async fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.db");
    let ring = KeyRing::generate().unwrap();
    drop(SqliteStore::open(&path, ring.audit_key()).unwrap());
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
    }
    match SqliteStore::open(&path, ring.audit_key()) {
        Err(StoreError::SchemaTooNew { found: 99, .. }) => {}
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("a newer schema must be refused"),
    }
}

/// Sends `ids` as one bulk insert, in chunks of 3, then `Commit` if `commit`.
async fn bulk(
    store: &SqliteStore,
    ring: &KeyRing,
    subjects: &[(&str, u8)],
    commit: bool,
) -> Result<u64, StoreError> {
    let (tx, rx) = tokio::sync::mpsc::channel(2);
    let writer = {
        let store = store.clone();
        tokio::spawn(async move { store.insert_subjects(rx).await })
    };
    for chunk in subjects.chunks(3) {
        let rows = chunk
            .iter()
            .map(|(id, t)| {
                (
                    subject(ring, id, [*t; 32]),
                    draft("subject.create", Some(id)),
                )
            })
            .collect();
        tx.send(BulkInsert::Subjects(rows)).await.unwrap();
    }
    if commit {
        tx.send(BulkInsert::Commit).await.unwrap();
    }
    drop(tx);
    writer.await.unwrap()
}

#[tokio::test]
async fn bulk_insert_is_all_or_nothing_and_reports_every_conflict() {
    let dir = tempfile::tempdir().unwrap();
    let ring = KeyRing::generate().unwrap();
    let store = SqliteStore::open(&dir.path().join("a.db"), ring.audit_key()).unwrap();
    store
        .insert_subject(
            subject(&ring, "old", [9; 32]),
            draft("subject.create", Some("old")),
        )
        .await
        .unwrap();

    // Index 2 collides with the stored subject, index 5 with index 0 of the same call.
    let rows = [
        ("a", 1),
        ("b", 2),
        ("c", 9),
        ("d", 3),
        ("e", 4),
        ("f", 1),
        ("g", 5),
    ];
    match bulk(&store, &ring, &rows, true).await {
        Err(StoreError::Conflicts(c)) => {
            let got: Vec<(u64, &str)> = c.iter().map(|c| (c.index, c.category.as_str())).collect();
            assert_eq!(got, vec![(2, "email"), (5, "email")]);
        }
        other => panic!("expected conflicts, got {other:?}"),
    }
    for (id, _) in rows {
        assert!(
            store.load_subject(id).await.unwrap().is_none(),
            "{id} was written"
        );
    }
    assert_eq!(
        verify(&store, &ring).await,
        1,
        "a failed bulk insert leaves no audit entry"
    );

    // Without `Commit` nothing is written either.
    let good = [("a", 1), ("b", 2), ("d", 3), ("e", 4)];
    assert_eq!(bulk(&store, &ring, &good, false).await.unwrap(), 0);
    assert!(store.load_subject("a").await.unwrap().is_none());
    assert_eq!(verify(&store, &ring).await, 1);

    // With it, every subject and one audit entry each; single writes still chain on.
    assert_eq!(bulk(&store, &ring, &good, true).await.unwrap(), 4);
    for (id, t) in good {
        assert!(store.load_subject(id).await.unwrap().is_some());
        let found = store.find_subjects("email", [t; 32], 10).await.unwrap();
        assert_eq!(found.len(), 1);
    }
    store.append_audit(vec![draft("x", None)]).await.unwrap();
    assert_eq!(verify(&store, &ring).await, 6);
}

//! Documents in the store: versions numbered per category, an upload's object kept only once it
//! commits, and every way a document row goes (erasure, retention of its category, a purge)
//! leaving its object to delete.

use super::*;
use amanah_store::DocumentRecord;

on_both_stores!(documents_keep_versions_and_deleted_ones_leave_their_objects_to_delete);

fn document(id: &str, subject: &str, category: &str, object: &str) -> DocumentRecord {
    DocumentRecord {
        id: id.into(),
        subject_id: subject.into(),
        category: category.into(),
        version: 0,
        object: object.into(),
        sealed: vec![1, 2, 3],
        stored_size: 100,
        uploaded_at_micros: 10,
    }
}

async fn upload(store: &Arc<dyn Store>, d: DocumentRecord) -> Result<(), StoreError> {
    store
        .reserve_object(&d.object, d.uploaded_at_micros)
        .await?;
    let subject = d.subject_id.clone();
    store
        .insert_document(d, draft(AuditAction::DocumentUpload, Some(&subject)))
        .await
        .map(drop)
}

async fn due(store: &Arc<dyn Store>, stale_before: i64) -> Vec<String> {
    store.objects_to_delete(stale_before, 100).await.unwrap()
}

async fn documents_keep_versions_and_deleted_ones_leave_their_objects_to_delete(backend: Backend) {
    let ring = KeyRing::generate().unwrap();
    let store = backend.open(ring.audit_key()).await;
    for (id, term) in [("s1", [1u8; 32]), ("s2", [2u8; 32])] {
        store
            .insert_subject(
                subject(&ring, id, term),
                draft(AuditAction::SubjectCreate, Some(id)),
            )
            .await
            .unwrap();
    }
    upload(&store, document("d1", "s1", "passport", "o1"))
        .await
        .unwrap();
    upload(&store, document("d2", "s1", "passport", "o2"))
        .await
        .unwrap();
    upload(&store, document("d3", "s1", "photo", "o3"))
        .await
        .unwrap();
    upload(&store, document("d4", "s2", "photo", "o4"))
        .await
        .unwrap();
    let mine = store.documents("s1").await.unwrap();
    let versions: Vec<(&str, &str, i64)> = mine
        .iter()
        .map(|d| (d.id.as_str(), d.category.as_str(), d.version))
        .collect();
    assert_eq!(
        versions,
        [
            ("d1", "passport", 1),
            ("d2", "passport", 2),
            ("d3", "photo", 1)
        ]
    );
    assert_eq!(mine[0].sealed, [1, 2, 3]);
    assert_eq!(
        store.document("s1", "d4").await.unwrap(),
        None,
        "another subject's"
    );
    assert_eq!(
        store.document("s2", "d4").await.unwrap().map(|d| d.version),
        Some(1)
    );
    // Committed uploads are kept, whatever their age.
    assert!(due(&store, i64::MAX).await.is_empty());
    assert!(store.object_known("o1").await.unwrap());
    assert!(!store.object_known("o9").await.unwrap());

    // An upload that never commits: its object is due once it is stale, not before.
    store.reserve_object("o5", 20).await.unwrap();
    assert!(due(&store, 20).await.is_empty());
    assert_eq!(due(&store, 21).await, ["o5"]);
    // One for a subject that is gone: refused, its object due like any never committed.
    assert!(matches!(
        upload(&store, document("d6", "nobody", "photo", "o6")).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(due(&store, 21).await, ["o5", "o6"]);
    store
        .forget_objects(vec!["o5".into(), "o6".into()])
        .await
        .unwrap();

    // Retention of one category, then the erasure of the subject: their objects are due at once.
    store
        .erase_categories(
            "s1",
            vec!["photo".into()],
            Vec::new(),
            draft(AuditAction::RetentionApply, Some("s1")),
        )
        .await
        .unwrap();
    assert_eq!(due(&store, 0).await, ["o3"]);
    assert_eq!(store.documents("s1").await.unwrap().len(), 2);
    store
        .erase_subject(
            "s1",
            50,
            "request",
            draft(AuditAction::SubjectErase, Some("s1")),
        )
        .await
        .unwrap();
    assert_eq!(due(&store, 0).await, ["o1", "o2", "o3"]);
    assert!(store.documents("s1").await.unwrap().is_empty());
    assert_eq!(store.documents("s2").await.unwrap().len(), 1);
    store
        .forget_objects(vec!["o1".into(), "o2".into(), "o3".into()])
        .await
        .unwrap();
    assert!(due(&store, i64::MAX).await.is_empty());
    // The uploads and the erasure are on the chain; reservations and deletions add nothing.
    assert_eq!(verify(&store, &ring).await, 2 + 4 + 1 + 1);
}

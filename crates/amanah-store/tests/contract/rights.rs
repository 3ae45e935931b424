//! The rights contract on both stores: requests move only from the status they were read in,
//! holds release once, restriction and the end of a relationship, erasure's bookkeeping
//! (tombstone, shredded request texts, freed unique values), category erasure and
//! de-identification.

use super::*;
use amanah_store::{
    DeidentifiedRecord, FieldWrite, HoldRecord, RequestFilter, RequestRecord, RequestTransition,
    RestrictionRecord,
};

on_both_stores!(
    requests_move_only_from_the_status_they_were_read_in,
    holds_release_once_and_restrictions_come_and_go,
    erasure_leaves_a_tombstone_and_frees_what_the_subject_held,
    retention_erases_categories_and_deidentifies,
);

fn request(id: &str, subject: &str, due: i64) -> RequestRecord {
    RequestRecord {
        id: id.into(),
        subject_id: subject.into(),
        kind: "access".into(),
        status: "received".into(),
        details: Some(b"sealed details".to_vec()),
        received_at_micros: 10,
        due_at_micros: due,
        updated_at_micros: 10,
        refusal_reason: None,
        refusal_text: None,
        closed_at_micros: None,
        received_by: "k".into(),
    }
}

fn transition(id: &str, from: &str, to: &str, at: i64) -> RequestTransition {
    RequestTransition {
        id: id.into(),
        from: from.into(),
        to: to.into(),
        at_micros: at,
        closed: matches!(to, "completed" | "refused"),
        refusal_reason: (to == "refused").then(|| "manifestly_unfounded".into()),
        refusal_text: (to == "refused").then(|| b"sealed refusal".to_vec()),
    }
}

async fn requests_move_only_from_the_status_they_were_read_in(backend: Backend) {
    let ring = KeyRing::generate().unwrap();
    let store = backend.open(ring.audit_key()).await;
    for id in ["s1", "s2"] {
        store
            .insert_subject(
                subject(&ring, id, [id.as_bytes()[1]; 32]),
                draft(AuditAction::SubjectCreate, Some(id)),
            )
            .await
            .unwrap();
    }
    assert!(matches!(
        store
            .insert_request(
                request("r0", "nobody", 100),
                draft(AuditAction::RequestCreate, None)
            )
            .await,
        Err(StoreError::NotFound)
    ));
    store
        .insert_request(
            request("r1", "s1", 100),
            draft(AuditAction::RequestCreate, Some("s1")),
        )
        .await
        .unwrap();
    store
        .insert_request(
            request("r2", "s2", 50),
            draft(AuditAction::RequestCreate, Some("s2")),
        )
        .await
        .unwrap();
    assert_eq!(
        store.load_request("r1").await.unwrap().unwrap(),
        request("r1", "s1", 100)
    );

    store
        .update_request(
            transition("r1", "received", "in_progress", 20),
            draft(AuditAction::RequestUpdate, None),
        )
        .await
        .unwrap();
    // A second writer that read the request before that change is refused, and changes nothing.
    let stale = store
        .update_request(
            transition("r1", "received", "refused", 21),
            draft(AuditAction::RequestUpdate, None),
        )
        .await;
    assert!(matches!(stale, Err(StoreError::Changed)), "{stale:?}");
    let r1 = store.load_request("r1").await.unwrap().unwrap();
    assert_eq!(
        (r1.status.as_str(), r1.updated_at_micros),
        ("in_progress", 20)
    );
    assert_eq!(r1.refusal_reason, None);
    assert!(matches!(
        store
            .update_request(
                transition("nope", "received", "in_progress", 22),
                draft(AuditAction::RequestUpdate, None)
            )
            .await,
        Err(StoreError::NotFound)
    ));
    store
        .update_request(
            transition("r1", "in_progress", "refused", 30),
            draft(AuditAction::RequestUpdate, None),
        )
        .await
        .unwrap();
    let r1 = store.load_request("r1").await.unwrap().unwrap();
    assert_eq!(r1.status, "refused");
    assert_eq!(r1.closed_at_micros, Some(30));
    assert_eq!(r1.refusal_reason.as_deref(), Some("manifestly_unfounded"));
    assert_eq!(r1.refusal_text.as_deref(), Some(&b"sealed refusal"[..]));

    // Listings: open only, by status, by subject, overdue; by due date; paged after an id.
    let ids = |rs: Vec<RequestRecord>| rs.into_iter().map(|r| r.id).collect::<Vec<_>>();
    let all = store
        .list_requests(RequestFilter::default(), None, 10)
        .await
        .unwrap();
    assert_eq!(ids(all), ["r2", "r1"]);
    let open = RequestFilter {
        open_only: true,
        ..RequestFilter::default()
    };
    assert_eq!(
        ids(store.list_requests(open, None, 10).await.unwrap()),
        ["r2"]
    );
    let refused = RequestFilter {
        status: Some("refused".into()),
        ..RequestFilter::default()
    };
    assert_eq!(
        ids(store.list_requests(refused, None, 10).await.unwrap()),
        ["r1"]
    );
    let of_s1 = RequestFilter {
        subject: Some("s1".into()),
        ..RequestFilter::default()
    };
    assert_eq!(
        ids(store.list_requests(of_s1, None, 10).await.unwrap()),
        ["r1"]
    );
    let overdue = RequestFilter {
        overdue_at: Some(60),
        ..RequestFilter::default()
    };
    assert_eq!(
        ids(store.list_requests(overdue, None, 10).await.unwrap()),
        ["r2"]
    );
    let after = store
        .list_requests(RequestFilter::default(), Some("r2"), 10)
        .await
        .unwrap();
    assert_eq!(ids(after), ["r1"]);
    assert_eq!(store.count_requests(60).await.unwrap(), (1, 1));
    assert_eq!(store.count_requests(40).await.unwrap(), (1, 0));
    // Refusals and stale transitions left no audit entry.
    assert_eq!(verify(&store, &ring).await, 2 + 2 + 2);
}

fn hold(id: &str, subject: &str, until: &str) -> HoldRecord {
    HoldRecord {
        id: id.into(),
        subject_id: subject.into(),
        reason: b"sealed reason".to_vec(),
        until: until.into(),
        created_at_micros: 5,
        created_by: "k".into(),
        released_at_micros: None,
    }
}

async fn holds_release_once_and_restrictions_come_and_go(backend: Backend) {
    let ring = KeyRing::generate().unwrap();
    let store = backend.open(ring.audit_key()).await;
    store
        .insert_subject(
            subject(&ring, "s1", [1; 32]),
            draft(AuditAction::SubjectCreate, Some("s1")),
        )
        .await
        .unwrap();
    assert!(matches!(
        store
            .insert_hold(
                hold("h0", "nobody", "2030-01-01"),
                draft(AuditAction::HoldCreate, None)
            )
            .await,
        Err(StoreError::NotFound)
    ));
    for (id, until) in [("h1", "2030-01-01"), ("h2", "2031-06-30")] {
        store
            .insert_hold(
                hold(id, "s1", until),
                draft(AuditAction::HoldCreate, Some("s1")),
            )
            .await
            .unwrap();
    }
    assert!(matches!(
        store
            .release_hold("s2", "h1", 7, draft(AuditAction::HoldRelease, None))
            .await,
        Err(StoreError::NotFound)
    ));
    store
        .release_hold("s1", "h1", 7, draft(AuditAction::HoldRelease, Some("s1")))
        .await
        .unwrap();
    assert!(matches!(
        store
            .release_hold("s1", "h1", 8, draft(AuditAction::HoldRelease, None))
            .await,
        Err(StoreError::NotFound)
    ));
    let holds = store.holds("s1").await.unwrap();
    assert_eq!(holds.len(), 2);
    assert_eq!(holds[0].released_at_micros, Some(7));
    assert_eq!(holds[1], hold("h2", "s1", "2031-06-30"));

    let restriction = RestrictionRecord {
        since_micros: 9,
        reason: Some(b"sealed".to_vec()),
        by: "k".into(),
    };
    assert!(matches!(
        store
            .set_restriction(
                "nobody",
                Some(restriction.clone()),
                draft(AuditAction::SubjectRestrict, None)
            )
            .await,
        Err(StoreError::NotFound)
    ));
    store
        .set_restriction(
            "s1",
            Some(restriction.clone()),
            draft(AuditAction::SubjectRestrict, Some("s1")),
        )
        .await
        .unwrap();
    assert_eq!(store.restriction("s1").await.unwrap(), Some(restriction));
    let loaded = store.load_subject("s1").await.unwrap().unwrap();
    assert_eq!(loaded.restricted_since_micros, Some(9));
    store
        .set_restriction("s1", None, draft(AuditAction::SubjectRestrict, Some("s1")))
        .await
        .unwrap();
    assert_eq!(store.restriction("s1").await.unwrap(), None);

    // The end of the relationship is recorded once: a later end does not move it.
    store
        .end_relationship("s1", 100, draft(AuditAction::SubjectEnd, Some("s1")))
        .await
        .unwrap();
    store
        .end_relationship("s1", 200, draft(AuditAction::SubjectEnd, Some("s1")))
        .await
        .unwrap();
    assert!(matches!(
        store
            .end_relationship("nobody", 1, draft(AuditAction::SubjectEnd, None))
            .await,
        Err(StoreError::NotFound)
    ));
    let page = store.retention_page(None, 10).await.unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].id, "s1");
    assert_eq!(page[0].relationship_ended_micros, Some(100));
    assert_eq!(page[0].purposes, vec![("p".to_owned(), 1)]);
    assert_eq!(page[0].categories, ["email"]);
    assert_eq!(
        page[0].holds_until,
        ["2031-06-30"],
        "released holds do not count"
    );
    assert!(store
        .retention_page(Some("s1"), 10)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(verify(&store, &ring).await, 1 + 2 + 1 + 2 + 2);
}

async fn erasure_leaves_a_tombstone_and_frees_what_the_subject_held(backend: Backend) {
    let ring = KeyRing::generate().unwrap();
    let store = backend.open(ring.audit_key()).await;
    for (id, term) in [("gone", [1; 32]), ("kept", [2; 32])] {
        store
            .insert_subject(
                subject(&ring, id, term),
                draft(AuditAction::SubjectCreate, Some(id)),
            )
            .await
            .unwrap();
    }
    store
        .insert_relation(
            RelationRecord {
                id: "rel".into(),
                subject_id: "kept".into(),
                kind: "guardian".into(),
                related_subject_id: "gone".into(),
                evidence: None,
                evidence_sha256: None,
                recorded_by: "k".into(),
                at_micros: 3,
            },
            draft(AuditAction::DisclosureRelease, Some("kept")),
        )
        .await
        .unwrap();
    store
        .insert_hold(
            hold("h", "gone", "2030-01-01"),
            draft(AuditAction::HoldCreate, Some("gone")),
        )
        .await
        .unwrap();
    let mut refused = request("r", "gone", 100);
    refused.refusal_text = Some(b"sealed".to_vec());
    store
        .insert_request(refused, draft(AuditAction::RequestCreate, Some("gone")))
        .await
        .unwrap();

    store
        .erase_subject(
            "gone",
            50,
            "request r",
            draft(AuditAction::SubjectErase, Some("gone")),
        )
        .await
        .unwrap();
    assert_eq!(store.erased_at("gone").await.unwrap(), Some(50));
    assert_eq!(store.erased_at("kept").await.unwrap(), None);
    assert!(store.load_subject("gone").await.unwrap().is_none());
    assert!(store.holds("gone").await.unwrap().is_empty());
    assert!(store.relations("kept").await.unwrap().is_empty());
    // The request stays, its sealed texts shredded.
    let r = store.load_request("r").await.unwrap().unwrap();
    assert_eq!((r.details, r.refusal_text), (None, None));
    assert!(matches!(
        store
            .erase_subject(
                "gone",
                60,
                "again",
                draft(AuditAction::SubjectErase, Some("gone"))
            )
            .await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(store.erased_at("gone").await.unwrap(), Some(50));
    // The erased subject's unique value is free for someone else.
    assert!(store
        .find_subjects("email", [1; 32], 10)
        .await
        .unwrap()
        .is_empty());
    store
        .insert_subject(
            subject(&ring, "new", [1; 32]),
            draft(AuditAction::SubjectCreate, Some("new")),
        )
        .await
        .unwrap();
    assert_eq!(
        store.find_subjects("email", [1; 32], 10).await.unwrap()[0].id,
        "new"
    );
    assert_eq!(verify(&store, &ring).await, 2 + 3 + 1 + 1);
}

async fn retention_erases_categories_and_deidentifies(backend: Backend) {
    let ring = KeyRing::generate().unwrap();
    let store = backend.open(ring.audit_key()).await;
    let mut s = subject(&ring, "s1", [1; 32]);
    s.fields.push(FieldWrite {
        category: "city".into(),
        ciphertext: b"sealed city".to_vec(),
        index_term: Some([9; 32]),
        unique: false,
    });
    store
        .insert_subject(s, draft(AuditAction::SubjectCreate, Some("s1")))
        .await
        .unwrap();
    store
        .insert_subject(
            subject(&ring, "s2", [2; 32]),
            draft(AuditAction::SubjectCreate, Some("s2")),
        )
        .await
        .unwrap();
    assert!(matches!(
        store
            .erase_categories(
                "nobody",
                vec!["email".into()],
                vec![],
                draft(AuditAction::RetentionApply, None)
            )
            .await,
        Err(StoreError::NotFound)
    ));
    store
        .erase_categories(
            "s1",
            vec!["email".into()],
            vec!["p".into()],
            draft(AuditAction::SubjectSearch, Some("s1")),
        )
        .await
        .unwrap();
    let s1 = store.load_subject("s1").await.unwrap().unwrap();
    assert_eq!(
        s1.fields,
        Ok(vec![("city".to_owned(), b"sealed city".to_vec())])
    );
    assert!(s1.purposes.is_empty());
    assert!(store
        .find_subjects("email", [1; 32], 10)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        store
            .find_subjects("city", [9; 32], 10)
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(store.subject_purposes("s1").await.unwrap(), vec![]);

    assert_eq!(store.deidentified_count().await.unwrap(), 0);
    let record = DeidentifiedRecord {
        id: "d1".into(),
        purposes: vec!["p".into(), "q".into()],
        attributes: r#"{"birth_year":1990}"#.into(),
        created_on: "2026-12-01".into(),
    };
    store
        .deidentify_subject(
            "s2",
            70,
            record,
            draft(AuditAction::RetentionApply, Some("s2")),
        )
        .await
        .unwrap();
    assert!(store.load_subject("s2").await.unwrap().is_none());
    assert_eq!(store.erased_at("s2").await.unwrap(), Some(70));
    assert_eq!(store.deidentified_count().await.unwrap(), 1);
    let record = DeidentifiedRecord {
        id: "d2".into(),
        purposes: vec![],
        attributes: "{}".into(),
        created_on: "2026-12-01".into(),
    };
    assert!(matches!(
        store
            .deidentify_subject(
                "s2",
                80,
                record,
                draft(AuditAction::RetentionApply, Some("s2"))
            )
            .await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(store.deidentified_count().await.unwrap(), 1, "nothing kept");
    assert_eq!(verify(&store, &ring).await, 2 + 1 + 1);
}

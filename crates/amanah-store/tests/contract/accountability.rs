//! The accountability contract on both stores: the disclosure workflow's steps and releases
//! apply only from the state they were decided on, release counts, listings, and the breach
//! register (notified once, overdue counts, subjects of all-subject breaches).

use super::*;
use amanah_store::{DisclosureFilter, DisclosureRelease, DisclosureStep};

on_both_stores!(
    disclosure_steps_and_releases_apply_only_from_the_state_read,
    breaches_are_notified_once_and_counted,
);

pub(super) fn disclosure(id: &str, subjects: &[&str], requested_at: i64) -> DisclosureRecord {
    DisclosureRecord {
        id: id.into(),
        recipient: "r".into(),
        purpose: "p".into(),
        subject_ids: subjects.iter().map(|s| (*s).to_owned()).collect(),
        categories: vec!["email".into()],
        reason: "reason".into(),
        reference: Some("order 1".into()),
        status: "pending_approval".into(),
        requested_by: "k1".into(),
        requested_at_micros: requested_at,
        approved_by: None,
        approved_at_micros: None,
        authorized_by: None,
        authorized_at_micros: None,
        rejected_by: None,
        rejected_at_micros: None,
        rejection_reason: None,
        releases: 0,
        max_releases: 2,
        first_released_at_micros: None,
        last_released_at_micros: None,
        notification_deferred_until: None,
        deferral_reason: None,
        excluded: "[]".into(),
    }
}

fn step(id: &str, from: &str, to: &str, at: i64) -> DisclosureStep {
    DisclosureStep {
        id: id.into(),
        from: from.into(),
        to: to.into(),
        by: format!("by-{to}"),
        at_micros: at,
        reason: (to == "rejected").then(|| "no".into()),
    }
}

fn release(id: &str, from: &str, releases: u32, at: i64) -> DisclosureRelease {
    DisclosureRelease {
        id: id.into(),
        from: from.into(),
        releases,
        at_micros: at,
    }
}

async fn disclosure_steps_and_releases_apply_only_from_the_state_read(backend: Backend) {
    let ring = KeyRing::generate().unwrap();
    let store = backend.open(ring.audit_key()).await;
    for (id, term) in [("s1", [1; 32]), ("s2", [2; 32])] {
        store
            .insert_subject(
                subject(&ring, id, term),
                draft(AuditAction::SubjectCreate, Some(id)),
            )
            .await
            .unwrap();
    }
    assert!(matches!(
        store
            .insert_disclosure(
                disclosure("d0", &["s1", "nobody"], 1),
                draft(AuditAction::DisclosureRequest, None)
            )
            .await,
        Err(StoreError::NotFound)
    ));
    assert!(store.load_disclosure("d0").await.unwrap().is_none());
    store
        .insert_disclosure(
            disclosure("d1", &["s2", "s1"], 10),
            draft(AuditAction::DisclosureRequest, None),
        )
        .await
        .unwrap();
    store
        .insert_disclosure(
            disclosure("d2", &["s2"], 20),
            draft(AuditAction::DisclosureRequest, None),
        )
        .await
        .unwrap();
    let d1 = store.load_disclosure("d1").await.unwrap().unwrap();
    assert_eq!(d1.subject_ids, ["s1", "s2"]);
    assert_eq!(d1.reference.as_deref(), Some("order 1"));

    store
        .step_disclosure(
            step("d1", "pending_approval", "approved", 11),
            draft(AuditAction::DisclosureApprove, None),
        )
        .await
        .unwrap();
    // Decided on a state that has moved on: refused, nothing changed.
    for stale in [
        step("d1", "pending_approval", "rejected", 12),
        step("d1", "pending_approval", "authorized", 12),
    ] {
        let result = store
            .step_disclosure(stale, draft(AuditAction::DisclosureApprove, None))
            .await;
        assert!(matches!(result, Err(StoreError::Changed)), "{result:?}");
    }
    assert!(matches!(
        store
            .step_disclosure(
                step("nope", "approved", "authorized", 12),
                draft(AuditAction::DisclosureApprove, None)
            )
            .await,
        Err(StoreError::NotFound)
    ));
    store
        .step_disclosure(
            step("d1", "approved", "authorized", 13),
            draft(AuditAction::DisclosureApprove, None),
        )
        .await
        .unwrap();
    let d1 = store.load_disclosure("d1").await.unwrap().unwrap();
    assert_eq!(d1.status, "authorized");
    assert_eq!(d1.approved_by.as_deref(), Some("by-approved"));
    assert_eq!(d1.approved_at_micros, Some(11));
    assert_eq!(d1.authorized_at_micros, Some(13));
    assert_eq!((d1.rejected_by, d1.rejection_reason), (None, None));

    // Releases: each counted from the count read; one audit entry per subject carried.
    let n = store
        .record_release(
            release("d1", "authorized", 0, 30),
            vec![
                draft(AuditAction::DisclosureRelease, Some("s1")),
                draft(AuditAction::DisclosureRelease, Some("s2")),
            ],
        )
        .await
        .unwrap();
    assert_eq!(n, 1);
    let stale = store
        .record_release(
            release("d1", "authorized", 0, 31),
            vec![draft(AuditAction::DisclosureRelease, None)],
        )
        .await;
    assert!(matches!(stale, Err(StoreError::Changed)), "{stale:?}");
    let stale = store
        .record_release(
            release("d1", "released", 0, 31),
            vec![draft(AuditAction::DisclosureRelease, None)],
        )
        .await;
    assert!(matches!(stale, Err(StoreError::Changed)), "{stale:?}");
    assert_eq!(
        store
            .record_release(
                release("d1", "released", 1, 40),
                vec![draft(AuditAction::DisclosureRelease, None)]
            )
            .await
            .unwrap(),
        2
    );
    assert!(matches!(
        store
            .record_release(
                release("nope", "authorized", 0, 41),
                vec![draft(AuditAction::DisclosureRelease, None)]
            )
            .await,
        Err(StoreError::NotFound)
    ));
    let d1 = store.load_disclosure("d1").await.unwrap().unwrap();
    assert_eq!((d1.status.as_str(), d1.releases), ("released", 2));
    assert_eq!(d1.first_released_at_micros, Some(30));
    assert_eq!(d1.last_released_at_micros, Some(40));

    store
        .step_disclosure(
            step("d2", "pending_approval", "rejected", 50),
            draft(AuditAction::DisclosureApprove, None),
        )
        .await
        .unwrap();
    let d2 = store.load_disclosure("d2").await.unwrap().unwrap();
    assert_eq!(d2.rejected_by.as_deref(), Some("by-rejected"));
    assert_eq!(d2.rejection_reason.as_deref(), Some("no"));

    // Listings: newest first, by subject, by status, paged after an id.
    let ids = |ds: Vec<DisclosureRecord>| ds.into_iter().map(|d| d.id).collect::<Vec<_>>();
    let all = DisclosureFilter::default();
    assert_eq!(
        ids(store.list_disclosures(all.clone(), None, 10).await.unwrap()),
        ["d2", "d1"]
    );
    assert_eq!(
        ids(store.list_disclosures(all, Some("d2"), 10).await.unwrap()),
        ["d1"]
    );
    let of_s1 = DisclosureFilter {
        subject: Some("s1".into()),
        status: None,
    };
    let found = store.list_disclosures(of_s1, None, 10).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].subject_ids, ["s1", "s2"]);
    let released = DisclosureFilter {
        subject: Some("s2".into()),
        status: Some("released".into()),
    };
    assert_eq!(
        ids(store.list_disclosures(released, None, 10).await.unwrap()),
        ["d1"]
    );
    assert_eq!(verify(&store, &ring).await, 2 + 2 + 2 + 2 + 1 + 1);
}

pub(super) fn breach(
    id: &str,
    subjects: &[&str],
    detected_at: i64,
    notify_by: i64,
) -> BreachRecord {
    BreachRecord {
        id: id.into(),
        detected_at_micros: detected_at,
        recorded_at_micros: detected_at + 1,
        recorded_by: "k".into(),
        description: "d".into(),
        categories: vec!["email".into()],
        all_subjects: subjects.is_empty(),
        subject_ids: subjects.iter().map(|s| (*s).to_owned()).collect(),
        cause: "c".into(),
        measures: "m".into(),
        notify_by_micros: notify_by,
        notified_at_micros: None,
        notified_by: None,
    }
}

async fn breaches_are_notified_once_and_counted(backend: Backend) {
    let ring = KeyRing::generate().unwrap();
    let store = backend.open(ring.audit_key()).await;
    for (id, term) in [("s1", [1; 32]), ("s2", [2; 32]), ("s3", [3; 32])] {
        store
            .insert_subject(
                subject(&ring, id, term),
                draft(AuditAction::SubjectCreate, Some(id)),
            )
            .await
            .unwrap();
    }
    assert!(matches!(
        store
            .insert_breach(
                breach("b0", &["nobody"], 1, 100),
                draft(AuditAction::BreachRecord, None)
            )
            .await,
        Err(StoreError::NotFound)
    ));
    store
        .insert_breach(
            breach("b1", &["s2", "s1"], 10, 100),
            draft(AuditAction::BreachRecord, None),
        )
        .await
        .unwrap();
    store
        .insert_breach(
            breach("b2", &[], 20, 200),
            draft(AuditAction::BreachRecord, None),
        )
        .await
        .unwrap();
    let b1 = store.load_breach("b1").await.unwrap().unwrap();
    assert_eq!(b1.subject_ids, ["s1", "s2"]);
    assert!(!b1.all_subjects);
    assert!(store.load_breach("b2").await.unwrap().unwrap().all_subjects);
    assert!(store.load_breach("b0").await.unwrap().is_none());

    assert_eq!(store.count_breaches(150).await.unwrap(), (2, 1));
    let ids = |bs: Vec<BreachRecord>| bs.into_iter().map(|b| b.id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.list_breaches(None, None, 10).await.unwrap()),
        ["b2", "b1"]
    );
    assert_eq!(
        ids(store.list_breaches(Some(150), None, 10).await.unwrap()),
        ["b1"]
    );
    assert_eq!(
        ids(store.list_breaches(None, Some("b2"), 10).await.unwrap()),
        ["b1"]
    );

    store
        .mark_breach_notified("b1", "k2", 120, draft(AuditAction::BreachNotified, None))
        .await
        .unwrap();
    let again = store
        .mark_breach_notified("b1", "k3", 130, draft(AuditAction::BreachNotified, None))
        .await;
    assert!(matches!(again, Err(StoreError::Changed)), "{again:?}");
    assert!(matches!(
        store
            .mark_breach_notified("nope", "k2", 130, draft(AuditAction::BreachNotified, None))
            .await,
        Err(StoreError::NotFound)
    ));
    let b1 = store.load_breach("b1").await.unwrap().unwrap();
    assert_eq!(
        (b1.notified_at_micros, b1.notified_by.as_deref()),
        (Some(120), Some("k2"))
    );
    assert_eq!(store.count_breaches(250).await.unwrap(), (1, 1));
    assert!(store
        .list_breaches(Some(150), None, 10)
        .await
        .unwrap()
        .is_empty());

    // A breach of all subjects pages through their ids; the record of processing counts them.
    assert_eq!(store.subject_ids(None, 2).await.unwrap(), ["s1", "s2"]);
    assert_eq!(store.subject_ids(Some("s2"), 2).await.unwrap(), ["s3"]);
    assert_eq!(
        store.subjects_per_purpose().await.unwrap(),
        vec![("p".to_owned(), 3)]
    );
    assert_eq!(verify(&store, &ring).await, 3 + 2 + 1);
}

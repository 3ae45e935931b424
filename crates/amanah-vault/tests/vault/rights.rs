//! Data-subject rights as time passes: a request's deadline, erasure by crypto-shredding, the
//! retention sweep, and restriction.

use amanah_core::retention::RetentionAction;
use amanah_core::{Conflict, Error};
use amanah_testkit::{on_both_stores, Kind, TestVault, START};
use amanah_vault::{act, Principal, RequestView, Target};
use serde_json::json;
use time::Duration;

use super::{adult, consent, create, grant, read, refused, update, vault};

on_both_stores!(
    a_request_is_due_three_days_later_and_then_overdue,
    erasure_shreds_the_key_and_the_subject_reads_as_erased,
    a_retention_sweep_acts_once_the_retention_has_passed,
    restriction_blocks_reads_and_writes_not_answering_a_request,
);

fn micros(t: time::OffsetDateTime) -> i64 {
    t.unix_timestamp() * 1_000_000
}

async fn request(v: &TestVault, dpo: &Principal, subject: &str, kind: &str) -> RequestView {
    let permit = v
        .permit::<act::RequestCreate>(dpo, Target::subject(subject))
        .await;
    v.create_request(&permit, kind, Some(&json!({"note": "asked by e-mail"})))
        .await
        .unwrap()
}

async fn get(v: &TestVault, dpo: &Principal, id: &str) -> RequestView {
    let permit = v.permit::<act::RequestRead>(dpo, Target::none()).await;
    v.get_request(&permit, id).await.unwrap()
}

async fn overdue_ids(v: &TestVault, dpo: &Principal) -> Vec<String> {
    let permit = v.permit::<act::RequestList>(dpo, Target::none()).await;
    v.list_requests(&permit, None, true, None, None, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.record.id)
        .collect()
}

async fn a_request_is_due_three_days_later_and_then_overdue(kind: Kind) {
    let v = vault(kind).await;
    let dpo = v.principal("dpo").await;
    let officer = v.principal("officer").await;
    let id = adult(&v, 1).await;
    // Only a role that handles requests records them.
    assert!(matches!(
        v.refusal::<act::RequestCreate>(&officer, Target::subject(&id))
            .await,
        Error::Forbidden(_)
    ));
    let r = request(&v, &dpo, &id, "access").await;
    assert_eq!(r.record.status, "received");
    assert_eq!(r.record.received_at_micros, micros(START));
    assert_eq!(
        r.record.due_at_micros,
        micros(START + Duration::hours(3 * 24))
    );
    assert!(!r.overdue);
    assert_eq!(r.details, Some(json!({"note": "asked by e-mail"})));

    // Due at the last microsecond of the third day, overdue just after.
    v.advance(Duration::hours(72));
    assert!(!get(&v, &dpo, &r.record.id).await.overdue);
    assert!(overdue_ids(&v, &dpo).await.is_empty());
    v.advance(Duration::seconds(1));
    assert!(get(&v, &dpo, &r.record.id).await.overdue);
    assert_eq!(overdue_ids(&v, &dpo).await, vec![r.record.id.clone()]);

    // Work in progress is still late; a completed request is not.
    let update = v.permit::<act::RequestUpdate>(&dpo, Target::none()).await;
    let e = v
        .transition_request(&update, &r.record.id, "completed", None)
        .await
        .unwrap_err();
    assert!(
        matches!(e, Error::Conflict(Conflict::InvalidTransition, _)),
        "{e:?}"
    );
    let moved = v
        .transition_request(&update, &r.record.id, "in_progress", None)
        .await
        .unwrap();
    assert!(moved.overdue);
    let done = v
        .transition_request(&update, &r.record.id, "completed", None)
        .await
        .unwrap();
    assert!(!done.overdue);
    assert_eq!(
        done.record.closed_at_micros,
        Some(micros(START + Duration::hours(72) + Duration::seconds(1)))
    );
    assert!(overdue_ids(&v, &dpo).await.is_empty());
}

/// Stored rows of `table` for `subject` (a quoted id column).
fn rows(v: &TestVault, table: &str, subject: &str) -> i64 {
    v.count(&format!(
        "SELECT COUNT(*) FROM {table} WHERE subject_id = '{subject}'"
    ))
}

async fn erasure_shreds_the_key_and_the_subject_reads_as_erased(kind: Kind) {
    let v = vault(kind).await;
    let dpo = v.principal("dpo").await;
    let officer = v.principal("officer").await;
    let id = adult(&v, 1).await;
    let other = adult(&v, 2).await;
    assert_eq!(rows(&v, "amanah_keys.data_keys", &id), 1);
    let with_fields = |id: &str| {
        v.count(&format!(
            "SELECT COUNT(*) FROM subjects WHERE id = '{id}' AND length(fields) > 0"
        ))
    };
    assert_eq!(with_fields(&id), 1);

    assert!(matches!(
        v.refusal::<act::SubjectErase>(&officer, Target::subject(&id))
            .await,
        Error::Forbidden(_)
    ));
    v.advance(Duration::days(1));
    let permit = v
        .permit::<act::SubjectErase>(&dpo, Target::subject(&id))
        .await;
    v.erase_subject(&permit, None).await.unwrap();

    // No key, no ciphertext, no index term: the data cannot be read back, by anyone.
    assert_eq!(rows(&v, "amanah_keys.data_keys", &id), 0);
    assert_eq!(with_fields(&id), 0);
    assert_eq!(rows(&v, "blind_index", &id), 0);
    assert_eq!(rows(&v, "unique_index", &id), 0);
    assert_eq!(
        v.count(&format!("SELECT COUNT(*) FROM subjects WHERE id = '{id}'")),
        0
    );
    assert!(v.store.load_subject(&id).await.unwrap().is_none());
    for who in [&officer, &v.admin()] {
        match refused(read(&v, who, &id, "admission").await) {
            Error::Gone(m) => assert!(m.contains("erased on 2026-11-24"), "{m}"),
            other => panic!("not gone: {other:?}"),
        }
    }
    // Erased once; the unique e-mail is free again; the other subject is untouched.
    let again = v
        .permit::<act::SubjectErase>(&dpo, Target::subject(&id))
        .await;
    assert!(matches!(
        v.erase_subject(&again, None).await,
        Err(Error::Gone(_))
    ));
    create(
        &v,
        &officer,
        "admission",
        json!({"full_name": "New", "email": "p1@example.id"}),
    )
    .await;
    assert_eq!(
        read(&v, &officer, &other, "admission")
            .await
            .unwrap()
            .fields["email"],
        "p2@example.id"
    );
    assert!(v.verify_chain().await.unwrap().ok());
}

async fn sweep(v: &TestVault, dpo: &Principal, dry_run: bool) -> Vec<(String, RetentionAction)> {
    let permit = v.permit::<act::RetentionSweep>(dpo, Target::none()).await;
    let report = v.retention_sweep(&permit, dry_run, |_| {}).await.unwrap();
    assert_eq!(report.dry_run, dry_run);
    report
        .items
        .into_iter()
        .map(|i| (i.subject_id, i.action))
        .collect()
}

async fn a_retention_sweep_acts_once_the_retention_has_passed(kind: Kind) {
    let v = vault(kind).await;
    let dpo = v.principal("dpo").await;
    let marketer = v.principal("marketer").await;
    let officer = v.principal("officer").await;
    // A lead collected under marketing only (two years), with consent.
    let permit = v
        .permit::<act::SubjectCreate>(&marketer, Target::purpose("marketing"))
        .await;
    let (lead, _) = v
        .create_subject_with_consent(
            &permit,
            &super::fields(json!({"full_name": "Lead", "email": "lead@example.id"})),
            Some(&grant("marketing")),
        )
        .await
        .unwrap();
    // An applicant under admission (five years, then de-identified) who also consented.
    let applicant = adult(&v, 1).await;
    consent(&v, &officer, &applicant, &grant("marketing"))
        .await
        .unwrap();
    assert!(sweep(&v, &dpo, false).await.is_empty(), "nothing has ended");

    // A day before the two years end, still nothing.
    v.clock.set(START + Duration::days(2 * 365 - 1));
    assert!(sweep(&v, &dpo, false).await.is_empty());
    v.clock.set(START + Duration::days(2 * 365 + 1));
    let planned = sweep(&v, &dpo, true).await;
    let marketing = vec!["marketing".to_owned()];
    assert_eq!(
        planned,
        vec![
            (
                lead.clone(),
                RetentionAction::EraseSubject {
                    expired: marketing.clone()
                }
            ),
            // Marketing's categories are also admission's: the applicant keeps them all.
            (
                applicant.clone(),
                RetentionAction::EraseCategories {
                    expired: marketing.clone(),
                    categories: Vec::new()
                }
            ),
        ]
    );
    // A dry run changes nothing.
    read(&v, &marketer, &lead, "marketing").await.unwrap();
    assert_eq!(sweep(&v, &dpo, false).await, planned);
    assert!(matches!(
        refused(read(&v, &v.admin(), &lead, "marketing").await),
        Error::Gone(_)
    ));
    assert_eq!(rows(&v, "amanah_keys.data_keys", &lead), 0);
    read(&v, &officer, &applicant, "admission").await.unwrap();
    assert!(sweep(&v, &dpo, false).await.is_empty(), "done once");

    // Five years after collection admission ends: the applicant is de-identified.
    v.clock.set(START + Duration::days(5 * 366));
    match &sweep(&v, &dpo, false).await[..] {
        [(id, RetentionAction::Deidentify { expired })] => {
            assert_eq!(id, &applicant);
            assert!(expired.contains(&"admission".to_owned()), "{expired:?}");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        refused(read(&v, &officer, &applicant, "admission").await),
        Error::Gone(_)
    ));
    assert!(matches!(
        v.refusal::<act::RetentionSweep>(&officer, Target::none())
            .await,
        Error::Forbidden(_)
    ));
}

async fn restriction_blocks_reads_and_writes_not_answering_a_request(kind: Kind) {
    let v = vault(kind).await;
    let dpo = v.principal("dpo").await;
    let officer = v.principal("officer").await;
    let id = adult(&v, 1).await;
    let restrict = v
        .permit::<act::SubjectRestrict>(&dpo, Target::subject(&id))
        .await;
    v.restrict(&restrict, Some("accuracy contested"))
        .await
        .unwrap();

    let e = refused(
        update(
            &v,
            &officer,
            &id,
            "admission",
            json!({"full_name": "Changed"}),
        )
        .await,
    );
    assert!(
        matches!(e, Error::Forbidden(ref m) if m.contains("restricted")),
        "{e:?}"
    );
    let e = refused(update(&v, &dpo, &id, "admission", json!({"full_name": "Changed"})).await);
    assert!(
        matches!(e, Error::Forbidden(_)),
        "not even the DPO without a request: {e:?}"
    );
    assert!(matches!(
        refused(read(&v, &officer, &id, "admission").await),
        Error::Forbidden(_)
    ));

    // A rectification answering the subject's request goes through.
    let r = request(&v, &dpo, &id, "rectification").await;
    let rectify = v
        .permit::<act::SubjectRectify>(&dpo, Target::subject_under(&id, "admission"))
        .await;
    v.rectify_subject(
        &rectify,
        &super::fields(json!({"full_name": "Corrected"})),
        Some(&r.record.id),
    )
    .await
    .unwrap();

    let lift = v
        .permit::<act::SubjectUnrestrict>(&dpo, Target::subject(&id))
        .await;
    v.lift_restriction(&lift).await.unwrap();
    assert_eq!(
        read(&v, &officer, &id, "admission").await.unwrap().fields["full_name"],
        "Corrected"
    );
    update(
        &v,
        &officer,
        &id,
        "admission",
        json!({"full_name": "Changed"}),
    )
    .await
    .unwrap();
}

//! A disclosure's four-eyes workflow: the person in charge approves, the account owner
//! authorizes, each a different person from the requester, and only then is a bounded number
//! of packages released.

use amanah_core::{Conflict, Error};
use amanah_testkit::{on_both_stores, Kind, TestVault};
use amanah_vault::{act, DisclosureInput, DisclosureView, Principal, Target};
use serde_json::json;

use super::{create, refused, vault};

on_both_stores!(
    four_eyes_then_the_owner_then_bounded_releases,
    a_rejection_ends_the_disclosure,
);

fn to_verifier(subject: &str) -> DisclosureInput {
    DisclosureInput {
        recipient: "verifier".to_owned(),
        purpose: "admission".to_owned(),
        subject_ids: vec![subject.to_owned()],
        categories: vec!["full_name".to_owned(), "nik".to_owned()],
        reason: "identity verification of applicants".to_owned(),
        reference: Some("contract V-7".to_owned()),
        max_releases: Some(2),
        if_consent_missing: None,
        defer_notification_until: None,
        deferral_reason: None,
    }
}

async fn ask(v: &TestVault, who: &Principal, input: &DisclosureInput) -> DisclosureView {
    let permit = v
        .permit::<act::DisclosureRequest>(who, Target::purpose(&input.purpose))
        .await;
    let d = v.request_disclosure(&permit, input).await.unwrap();
    assert_eq!(d.record.status, "pending_approval");
    d
}

async fn approve(v: &TestVault, who: &Principal, id: &str) -> amanah_core::Result<DisclosureView> {
    let permit = v
        .authorize::<act::DisclosureApprove>(who, Target::none())
        .await?;
    v.step_disclosure(&permit, id, None).await
}

async fn authorize(
    v: &TestVault,
    who: &Principal,
    id: &str,
) -> amanah_core::Result<DisclosureView> {
    let permit = v
        .authorize::<act::DisclosureAuthorize>(who, Target::none())
        .await?;
    v.step_disclosure(&permit, id, None).await
}

async fn release(
    v: &TestVault,
    who: &Principal,
    id: &str,
) -> amanah_core::Result<amanah_vault::Package> {
    let permit = v
        .authorize::<act::DisclosureRelease>(who, Target::none())
        .await?;
    v.release_disclosure(&permit, id).await
}

async fn applicant(v: &TestVault, officer: &Principal) -> String {
    create(
        v,
        officer,
        "admission",
        json!({"full_name": "Ani Lestari", "email": "ani@example.id", "nik": "3171014101900001"}),
    )
    .await
}

async fn four_eyes_then_the_owner_then_bounded_releases(kind: Kind) {
    let v = vault(kind).await;
    let officer = v.principal("officer").await;
    let clerk = v.principal("clerk").await;
    let pic = v.principal("pic").await;
    let owner = v.principal("owner").await;
    let a = applicant(&v, &officer).await;
    let d = ask(&v, &officer, &to_verifier(&a)).await;
    let id = d.record.id.as_str();

    // Nothing is released before both steps, and the owner cannot go first.
    assert!(matches!(
        refused(release(&v, &officer, id).await),
        Error::Conflict(Conflict::InvalidTransition, _)
    ));
    let e = refused(authorize(&v, &owner, id).await);
    assert!(e.to_string().contains("approve it first"), "{e:?}");
    // Roles without the duty may not approve.
    for who in [&clerk, &owner] {
        assert!(matches!(
            refused(approve(&v, who, id).await),
            Error::Forbidden(_)
        ));
    }
    // Four eyes: the PIC's own request cannot be approved with the PIC's key, nor a request
    // with a second key issued to the person who asked.
    let own = ask(&v, &pic, &to_verifier(&a)).await;
    let e = refused(approve(&v, &pic, &own.record.id).await);
    assert!(
        matches!(e, Error::Forbidden(ref m) if m.contains("four eyes")),
        "{e:?}"
    );
    let officers_pic_key = v.issue("pic", officer.holder().unwrap()).await;
    let same_person = v.authenticate(&officers_pic_key.token).await.unwrap();
    let e = refused(approve(&v, &same_person, id).await);
    assert!(
        matches!(e, Error::Forbidden(ref m) if m.contains("four eyes")),
        "{e:?}"
    );

    let approved = approve(&v, &pic, id).await.unwrap();
    assert_eq!(approved.record.status, "approved");
    assert_eq!(approved.record.approved_by.as_deref(), Some(pic.key_id()));
    assert!(matches!(
        refused(approve(&v, &pic, id).await),
        Error::Conflict(Conflict::InvalidTransition, _)
    ));
    assert!(matches!(
        refused(release(&v, &officer, id).await),
        Error::Conflict(Conflict::InvalidTransition, _)
    ));
    let authorized = authorize(&v, &owner, id).await.unwrap();
    assert_eq!(authorized.record.status, "authorized");

    // Only the requester (or the admin) releases, at most twice, only what was asked.
    assert!(matches!(
        refused(release(&v, &clerk, id).await),
        Error::Forbidden(_)
    ));
    let p = release(&v, &officer, id).await.unwrap();
    assert_eq!(p.release, 1);
    assert!(!p.pseudonymized);
    assert_eq!(p.subjects.len(), 1);
    let (sid, values) = &p.subjects[0];
    assert_eq!(sid, &a);
    assert_eq!(values["full_name"], "Ani Lestari");
    assert_eq!(values["nik"], "3171014101900001");
    assert!(!values.contains_key("email"));
    assert_eq!(release(&v, &v.admin(), id).await.unwrap().release, 2);
    assert!(matches!(
        refused(release(&v, &officer, id).await),
        Error::Conflict(Conflict::ReleaseLimitReached, _)
    ));
}

async fn a_rejection_ends_the_disclosure(kind: Kind) {
    let v = vault(kind).await;
    let officer = v.principal("officer").await;
    let pic = v.principal("pic").await;
    let owner = v.principal("owner").await;
    let a = applicant(&v, &officer).await;
    let d = ask(&v, &officer, &to_verifier(&a)).await;
    let id = d.record.id.as_str();
    approve(&v, &pic, id).await.unwrap();

    let reject = v
        .permit::<act::DisclosureReject>(&owner, Target::none())
        .await;
    assert!(
        matches!(
            v.step_disclosure(&reject, id, None).await,
            Err(Error::Invalid { .. })
        ),
        "a rejection needs a reason"
    );
    let rejected = v
        .step_disclosure(&reject, id, Some("no contract on file"))
        .await
        .unwrap();
    assert_eq!(rejected.record.status, "rejected");
    assert_eq!(rejected.record.rejected_by.as_deref(), Some(owner.key_id()));
    assert!(matches!(
        refused(authorize(&v, &owner, id).await),
        Error::Conflict(Conflict::InvalidTransition, _)
    ));
    assert!(matches!(
        refused(release(&v, &officer, id).await),
        Error::Conflict(Conflict::InvalidTransition, _)
    ));
}

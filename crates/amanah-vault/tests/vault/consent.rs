//! Consent as the vault decides it over time: a grant allows, a withdrawal stops (at once or
//! when the grace ends), a changed purpose needs consent again, and a minor needs a guardian.

use amanah_core::Error;
use amanah_testkit::policies::{set, test_policy};
use amanah_testkit::{on_both_stores, Kind, TestVault};
use amanah_vault::{act, Principal, Target};
use serde_json::json;
use time::macros::datetime;
use time::Duration;

use super::{
    adult, consent, create, grant, guardian_grant, read, refused, update, vault, withdrawal,
};

on_both_stores!(
    a_grant_allows_reads_and_a_withdrawal_stops_them_at_once,
    with_a_grace_period_processing_stops_when_it_ends,
    a_changed_purpose_needs_consent_again,
    a_minor_needs_a_guardians_consent_and_a_role_cleared_for_specific_data,
);

/// The state of `purpose` in the subject's consent history, as the admin sees it.
async fn state(v: &TestVault, id: &str, purpose: &str) -> &'static str {
    let permit = v
        .permit::<act::ConsentRead>(&v.admin(), Target::subject(id))
        .await;
    let history = v.consent_history(&permit).await.unwrap();
    history
        .current
        .iter()
        .find(|c| c.purpose == purpose)
        .map(|c| c.state)
        .unwrap()
}

fn consent_required(e: &Error, starts: &str) {
    match e {
        Error::ConsentRequired(m) => assert!(m.starts_with(starts), "{m}"),
        other => panic!("not a consent refusal: {other:?}"),
    }
}

async fn apply(v: &TestVault, source: &str) {
    let permit = v.permit(&v.admin(), Target::none()).await;
    v.apply_policy(&permit, source).await.unwrap();
}

/// The subjects whose marketing consent predates the purpose's current version.
async fn stale_ids(v: &TestVault, marketer: &Principal) -> Vec<String> {
    let permit = v
        .permit::<act::ConsentStale>(marketer, Target::purpose("marketing"))
        .await;
    let mut ids: Vec<String> = v
        .stale_consents(&permit, None, None)
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|s| s.subject_id)
        .collect();
    ids.sort();
    ids
}

async fn a_grant_allows_reads_and_a_withdrawal_stops_them_at_once(kind: Kind) {
    let v = vault(kind).await;
    let officer = v.principal("officer").await;
    let marketer = v.principal("marketer").await;
    let id = adult(&v, 1).await;
    consent_required(
        &refused(read(&v, &marketer, &id, "marketing").await),
        "no consent",
    );

    consent(&v, &officer, &id, &grant("marketing"))
        .await
        .unwrap();
    assert_eq!(state(&v, &id, "marketing").await, "valid");
    let seen = read(&v, &marketer, &id, "marketing").await.unwrap();
    assert_eq!(seen.fields["email"], "p1@example.id");
    assert!(
        !seen.fields.contains_key("birth_date"),
        "only the purpose's categories"
    );

    v.advance(Duration::hours(1));
    consent(&v, &officer, &id, &withdrawal("marketing"))
        .await
        .unwrap();
    assert_eq!(state(&v, &id, "marketing").await, "withdrawn");
    consent_required(
        &refused(read(&v, &marketer, &id, "marketing").await),
        "consent withdrawn on 2026-11-23",
    );
    // Writes under the purpose stop too; other bases do not depend on consent.
    let e = refused(update(&v, &marketer, &id, "marketing", json!({"full_name": "New"})).await);
    assert!(matches!(e, Error::ConsentRequired(_)), "{e:?}");
    read(&v, &officer, &id, "admission").await.unwrap();
    update(&v, &officer, &id, "admission", json!({"full_name": "New"}))
        .await
        .unwrap();
}

async fn with_a_grace_period_processing_stops_when_it_ends(kind: Kind) {
    let v = TestVault::new(kind, "vault", &test_policy("v1", 2)).await;
    let officer = v.principal("officer").await;
    let marketer = v.principal("marketer").await;
    let id = adult(&v, 1).await;
    consent(&v, &officer, &id, &grant("marketing"))
        .await
        .unwrap();
    consent(&v, &officer, &id, &withdrawal("marketing"))
        .await
        .unwrap();
    assert_eq!(state(&v, &id, "marketing").await, "withdrawal_pending");
    read(&v, &marketer, &id, "marketing").await.unwrap();

    v.advance(Duration::days(2) - Duration::seconds(1));
    read(&v, &marketer, &id, "marketing").await.unwrap();
    v.advance(Duration::seconds(1));
    consent_required(
        &refused(read(&v, &marketer, &id, "marketing").await),
        "consent withdrawn on 2026-11-23",
    );
    assert_eq!(state(&v, &id, "marketing").await, "withdrawn");

    // Consenting again restores processing.
    consent(&v, &officer, &id, &grant("marketing"))
        .await
        .unwrap();
    read(&v, &marketer, &id, "marketing").await.unwrap();
}

async fn a_changed_purpose_needs_consent_again(kind: Kind) {
    let v = vault(kind).await;
    let officer = v.principal("officer").await;
    let marketer = v.principal("marketer").await;
    let a = adult(&v, 1).await;
    let b = adult(&v, 2).await;
    for id in [&a, &b] {
        consent(&v, &officer, id, &grant("marketing"))
            .await
            .unwrap();
    }
    assert!(stale_ids(&v, &marketer).await.is_empty());

    // A new policy version that leaves the purpose as it was: consents stay valid.
    apply(&v, &test_policy("v1.1", 0)).await;
    read(&v, &marketer, &a, "marketing").await.unwrap();
    assert!(stale_ids(&v, &marketer).await.is_empty());

    // The purpose now covers the phone number: everyone must be asked again.
    let wider = set(
        &test_policy("v2", 0),
        "purposes.marketing",
        "categories",
        r#"["full_name", "email", "phone"]"#,
    );
    apply(&v, &wider).await;
    consent_required(
        &refused(read(&v, &marketer, &a, "marketing").await),
        "consent predates policy version \"v2\"",
    );
    assert_eq!(state(&v, &a, "marketing").await, "stale");
    let mut both = vec![a.clone(), b.clone()];
    both.sort();
    assert_eq!(stale_ids(&v, &marketer).await, both);

    consent(&v, &officer, &a, &grant("marketing"))
        .await
        .unwrap();
    read(&v, &marketer, &a, "marketing").await.unwrap();
    assert_eq!(stale_ids(&v, &marketer).await, vec![b.clone()]);
    assert!(read(&v, &marketer, &b, "marketing").await.is_err());
}

async fn a_minor_needs_a_guardians_consent_and_a_role_cleared_for_specific_data(kind: Kind) {
    let v = vault(kind).await;
    let officer = v.principal("officer").await;
    let clerk = v.principal("clerk").await;
    let marketer = v.principal("marketer").await;
    // Sixteen on the vault's day: a minor (adult at 18).
    let child = json!({"full_name": "Ani", "email": "ani@example.id", "birth_date": "2010-06-15"});

    // A child's data is specific data: a role without that clearance cannot collect or read it.
    let permit = v
        .permit::<act::SubjectCreate>(&officer, Target::purpose("admission"))
        .await;
    let e = v
        .create_subject(&permit, &super::fields(child.clone()))
        .await
        .unwrap_err();
    assert!(
        matches!(e, Error::Forbidden(ref m) if m.contains("minor")),
        "{e:?}"
    );
    let id = create(&v, &clerk, "admission", child).await;
    assert!(matches!(
        refused(read(&v, &officer, &id, "admission").await),
        Error::Forbidden(_)
    ));
    read(&v, &clerk, &id, "admission").await.unwrap();

    // The minor alone cannot consent; a guardian can.
    let e = refused(consent(&v, &clerk, &id, &grant("marketing")).await);
    assert!(e.to_string().contains("guardian consent required"), "{e:?}");
    assert_eq!(state(&v, &id, "marketing").await, "none");
    consent(&v, &clerk, &id, &guardian_grant("marketing"))
        .await
        .unwrap();
    assert_eq!(state(&v, &id, "marketing").await, "valid");
    read(&v, &clerk, &id, "marketing").await.unwrap();
    assert!(
        matches!(
            refused(read(&v, &marketer, &id, "marketing").await),
            Error::Forbidden(_)
        ),
        "the marketer is not cleared for a child's data"
    );

    // Coming of age: the guardian's consent stays valid and the marketer may read.
    v.clock.set(datetime!(2028-06-15 00:00 UTC));
    read(&v, &marketer, &id, "marketing").await.unwrap();
}

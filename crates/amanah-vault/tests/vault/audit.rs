//! What every operation leaves on record: the time of the vault's clock, the policy version in
//! force, and refusals.

use amanah_core::audit::Outcome;
use amanah_core::Error;
use amanah_testkit::policies::{remove, test_policy};
use amanah_testkit::{on_both_stores, Kind, START};
use amanah_vault::{act, Target};
use serde_json::json;

use super::{create, fields, vault};

on_both_stores!(
    audit_entries_carry_the_vaults_time_and_policy_version,
    a_policy_applied_by_another_process_is_picked_up,
    refusals_are_audited_and_invalid_input_stores_nothing,
);

fn micros(t: time::OffsetDateTime) -> i64 {
    t.unix_timestamp() * 1_000_000
}

async fn audit_entries_carry_the_vaults_time_and_policy_version(kind: Kind) {
    let v = vault(kind).await;
    let admin = v.admin();
    let id = create(
        &v,
        &admin,
        "admission",
        json!({"full_name": "Siti", "email": "s@example.id"}),
    )
    .await;
    v.advance(time::Duration::hours(5));
    let read = v
        .permit(&admin, Target::subject_under(&id, "admission"))
        .await;
    v.read_subject(&read).await.unwrap();

    let audit = v.permit::<act::AuditRead>(&admin, Target::none()).await;
    let entries = v.audit_entries(&audit, Some(&id), 0, 100).await.unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0].entry.action.as_str(), "subject.create");
    assert_eq!(entries[0].entry.at_micros, micros(START));
    assert_eq!(entries[1].entry.action.as_str(), "subject.read");
    assert_eq!(
        entries[1].entry.at_micros,
        micros(START + time::Duration::hours(5))
    );
    assert_eq!(entries[1].entry.basis.as_deref(), Some("contract"));
    assert_eq!(entries[1].entry.policy_version, "v1");

    let apply = v.permit(&admin, Target::none()).await;
    v.apply_policy(&apply, &test_policy("v2", 0)).await.unwrap();
    let read = v
        .permit(&admin, Target::subject_under(&id, "admission"))
        .await;
    v.read_subject(&read).await.unwrap();
    let entries = v.audit_entries(&audit, Some(&id), 0, 100).await.unwrap();
    assert_eq!(entries.last().unwrap().entry.policy_version, "v2");
    assert!(v.verify_chain().await.unwrap().ok());
}

async fn a_policy_applied_by_another_process_is_picked_up(kind: Kind) {
    let v = vault(kind).await;
    let other = v.reopen().await;
    let without_officer = remove(&test_policy("v2", 0), "roles.officer");
    let apply = other
        .authorize(&other.operator(), Target::none())
        .await
        .unwrap();
    other.apply_policy(&apply, &without_officer).await.unwrap();

    assert!(v.policy().policy.role("officer").is_some());
    assert!(v.reload_policy().await.unwrap());
    assert!(v.policy().policy.role("officer").is_none());
    assert!(!v.reload_policy().await.unwrap(), "no change, no reload");
}

async fn refusals_are_audited_and_invalid_input_stores_nothing(kind: Kind) {
    let v = vault(kind).await;
    let officer = v.principal("officer").await;

    let err = v.refusal::<act::AuditRead>(&officer, Target::none()).await;
    assert!(matches!(err, Error::Forbidden(_)));
    let create = v
        .permit::<act::SubjectCreate>(&officer, Target::purpose("admission"))
        .await;
    let bad = fields(json!({"full_name": "Siti", "email": "not-an-email"}));
    let err = v.create_subject(&create, &bad).await.unwrap_err();
    assert!(matches!(err, Error::Invalid { field: Some(ref f), .. } if f == "email"));
    assert!(!err.to_string().contains("not-an-email"));

    let admin = v.admin();
    let audit = v.permit::<act::AuditRead>(&admin, Target::none()).await;
    let entries = v.audit_entries(&audit, None, 0, 100).await.unwrap();
    let denied: Vec<_> = entries
        .iter()
        .filter(|e| e.entry.outcome == Outcome::Denied)
        .collect();
    assert_eq!(denied.len(), 1);
    assert_eq!(denied[0].entry.action.as_str(), "audit.read");
    assert_eq!(denied[0].entry.actor, officer.key_id());
    assert!(
        entries
            .iter()
            .all(|e| e.entry.action.as_str() != "subject.create"),
        "nothing was created"
    );
    let search = v.permit(&admin, Target::purpose("admission")).await;
    assert!(v.search(&search, "email", "not-an-email").await.is_err());
}

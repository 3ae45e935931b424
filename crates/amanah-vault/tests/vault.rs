//! Vault use cases over a real SQLite store, with an injected clock.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use amanah_core::audit::Outcome;
use amanah_core::Error;
use amanah_crypto::KeyRing;
use amanah_store::{SqliteStore, Store};
use amanah_vault::{act, Act, ManualClock, Permit, Principal, Target, Vault};
use serde_json::json;
use time::macros::datetime;

const POLICY: &str = r#"
version = "v1"
[controller]
name = "C"
contact = "dpo@c.id"
[categories.full_name]
type = "name"
class = "general"
[categories.email]
type = "email"
class = "general"
index = true
[purposes.admission]
basis = "contract"
categories = ["full_name", "email"]
retention = "1y"
[roles.officer]
purposes = ["admission"]
"#;

/// A principal of `role`, authenticated from a key issued for it.
async fn principal(v: &Vault, role: &str) -> Principal {
    let permit = v
        .authorize::<act::KeyCreate>(&v.operator(), Target::none())
        .await
        .unwrap();
    let issued = v
        .create_api_key(&permit, role, role, &format!("{role} <{role}@c.id>"))
        .await
        .unwrap();
    v.authenticate(&issued.token).await.unwrap()
}

async fn permit<A: Act>(v: &Vault, who: &Principal, target: Target<'_>) -> Permit<A> {
    v.authorize::<A>(who, target).await.unwrap()
}

async fn vault(
    dir: &std::path::Path,
    clock: Arc<ManualClock>,
) -> (Vault, Arc<dyn Store>, Arc<KeyRing>) {
    let keys = Arc::new(KeyRing::generate().unwrap());
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(&dir.join("a.db"), keys.audit_key()).unwrap());
    let v = Vault::initialize(store.clone(), keys.clone(), clock, POLICY)
        .await
        .unwrap();
    (v, store, keys)
}

#[tokio::test]
async fn audit_entries_carry_the_injected_time_and_policy_version() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(datetime!(2026-03-01 08:00 UTC)));
    let (v, _, _) = vault(dir.path(), clock.clone()).await;
    let admin = v.operator();
    let fields = json!({"full_name": "Siti", "email": "s@example.id"});
    let create = permit::<act::SubjectCreate>(&v, &admin, Target::purpose("admission")).await;
    let id = v
        .create_subject(&create, fields.as_object().unwrap())
        .await
        .unwrap();
    clock.advance(time::Duration::hours(5));
    let read = permit(&v, &admin, Target::subject_under(&id, "admission")).await;
    v.read_subject(&read).await.unwrap();

    let audit = permit::<act::AuditRead>(&v, &admin, Target::none()).await;
    let entries = v.audit_entries(&audit, Some(&id), 0, 100).await.unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0].entry.action, "subject.create");
    assert_eq!(
        entries[0].entry.at_micros,
        datetime!(2026-03-01 08:00 UTC).unix_timestamp() * 1_000_000
    );
    assert_eq!(entries[1].entry.action, "subject.read");
    assert_eq!(
        entries[1].entry.at_micros,
        datetime!(2026-03-01 13:00 UTC).unix_timestamp() * 1_000_000
    );
    assert_eq!(entries[1].entry.basis.as_deref(), Some("contract"));
    assert_eq!(entries[1].entry.policy_version, "v1");

    let v2 = POLICY.replace("version = \"v1\"", "version = \"v2\"");
    let apply = permit(&v, &admin, Target::none()).await;
    v.apply_policy(&apply, &v2).await.unwrap();
    let read = permit(&v, &admin, Target::subject_under(&id, "admission")).await;
    v.read_subject(&read).await.unwrap();
    let entries = v.audit_entries(&audit, Some(&id), 0, 100).await.unwrap();
    assert_eq!(entries.last().unwrap().entry.policy_version, "v2");
    assert!(v.verify_chain().await.unwrap().ok());
}

#[tokio::test]
async fn a_policy_applied_by_another_process_is_picked_up() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(datetime!(2026-03-01 08:00 UTC)));
    let (v, store, keys) = vault(dir.path(), clock.clone()).await;
    let other = Vault::open(store, keys, clock).await.unwrap();
    let without_officer = POLICY
        .replace("[roles.officer]\npurposes = [\"admission\"]\n", "")
        .replace("v1", "v2");
    let apply = permit(&other, &other.operator(), Target::none()).await;
    other.apply_policy(&apply, &without_officer).await.unwrap();

    assert!(v.policy().policy.role("officer").is_some());
    assert!(v.reload_policy().await.unwrap());
    assert!(v.policy().policy.role("officer").is_none());
    assert!(!v.reload_policy().await.unwrap(), "no change, no reload");
}

#[tokio::test]
async fn refusals_are_audited_and_invalid_input_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(datetime!(2026-03-01 08:00 UTC)));
    let (v, _, _) = vault(dir.path(), clock).await;
    let officer = principal(&v, "officer").await;

    let err = v
        .authorize::<act::AuditRead>(&officer, Target::none())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Forbidden(_)));
    let bad = json!({"full_name": "Siti", "email": "not-an-email"});
    let create = permit::<act::SubjectCreate>(&v, &officer, Target::purpose("admission")).await;
    let err = v
        .create_subject(&create, bad.as_object().unwrap())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Invalid { field: Some(ref f), .. } if f == "email"));
    assert!(!err.to_string().contains("not-an-email"));

    let admin = v.operator();
    let audit = permit::<act::AuditRead>(&v, &admin, Target::none()).await;
    let entries = v.audit_entries(&audit, None, 0, 100).await.unwrap();
    let denied: Vec<_> = entries
        .iter()
        .filter(|e| e.entry.outcome == Outcome::Denied)
        .collect();
    assert_eq!(denied.len(), 1);
    assert_eq!(denied[0].entry.action, "audit.read");
    assert_eq!(denied[0].entry.actor, officer.key_id());
    assert!(
        entries.iter().all(|e| e.entry.action != "subject.create"),
        "nothing was created"
    );
    let search = permit(&v, &admin, Target::purpose("admission")).await;
    assert!(v.search(&search, "email", "not-an-email").await.is_err());
}

//! Vault use cases over a real SQLite store, with an injected clock.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use amanah_core::access::Principal;
use amanah_core::audit::Outcome;
use amanah_core::Error;
use amanah_crypto::KeyRing;
use amanah_store::{SqliteStore, Store};
use amanah_vault::{ManualClock, Vault};
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

fn admin() -> Principal {
    Principal {
        key_id: "cli".into(),
        role: "admin".into(),
    }
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
    let fields = json!({"full_name": "Siti", "email": "s@example.id"});
    let id = v
        .create_subject(&admin(), "admission", fields.as_object().unwrap())
        .await
        .unwrap();
    clock.advance(time::Duration::hours(5));
    v.read_subject(&admin(), "admission", &id).await.unwrap();

    let entries = v.audit_entries(&admin(), Some(&id), 0, 100).await.unwrap();
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
    v.apply_policy(&admin(), &v2).await.unwrap();
    v.read_subject(&admin(), "admission", &id).await.unwrap();
    let entries = v.audit_entries(&admin(), Some(&id), 0, 100).await.unwrap();
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
    other
        .apply_policy(&admin(), &without_officer)
        .await
        .unwrap();

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
    let officer = Principal {
        key_id: "key-1".into(),
        role: "officer".into(),
    };

    let err = v.audit_entries(&officer, None, 0, 10).await.unwrap_err();
    assert!(matches!(err, Error::Forbidden(_)));
    let bad = json!({"full_name": "Siti", "email": "not-an-email"});
    let err = v
        .create_subject(&officer, "admission", bad.as_object().unwrap())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Invalid { field: Some(ref f), .. } if f == "email"));
    assert!(!err.to_string().contains("not-an-email"));

    let entries = v.audit_entries(&admin(), None, 0, 100).await.unwrap();
    let denied: Vec<_> = entries
        .iter()
        .filter(|e| e.entry.outcome == Outcome::Denied)
        .collect();
    assert_eq!(denied.len(), 1);
    assert_eq!(denied[0].entry.action, "audit.read");
    assert_eq!(denied[0].entry.actor, "key-1");
    assert!(
        entries.iter().all(|e| e.entry.action != "subject.create"),
        "nothing was created"
    );
    assert!(v
        .search(&admin(), "admission", "email", "not-an-email")
        .await
        .is_err());
}

//! API keys: a verified key may be kept in memory, yet a revocation stops it at the very next
//! request, whichever process revokes it.

use std::sync::Arc;

use amanah_core::Error;
use amanah_store::{PgStore, SqliteStore, Store};
use amanah_testkit::{on_both_stores, Kind, TestVault};
use amanah_vault::{act, Target, Vault};

use super::vault;

on_both_stores!(a_revoked_key_stops_at_the_next_request_whoever_revokes_it);

/// Another process's vault over the same database: its own store handle, nothing shared in
/// memory with `v`.
async fn other_process(v: &TestVault) -> Vault {
    let store: Arc<dyn Store> = match v.kind {
        Kind::Sqlite => Arc::new(SqliteStore::open(&v.sqlite_path(), v.ring.audit_key()).unwrap()),
        Kind::Postgres => Arc::new(
            PgStore::open(v.pg_url.as_deref().unwrap(), v.ring.audit_key())
                .await
                .unwrap(),
        ),
    };
    Vault::open(store, v.ring.clone(), v.clock.clone())
        .await
        .unwrap()
}

async fn revoke(vault: &Vault, id: &str) {
    let admin = vault.operator();
    let permit = vault
        .authorize::<act::KeyRevoke>(&admin, Target::none())
        .await
        .unwrap();
    vault.revoke_api_key(&permit, id).await.unwrap();
}

async fn a_revoked_key_stops_at_the_next_request_whoever_revokes_it(kind: Kind) {
    let v = vault(kind).await;
    let here = v.issue("officer", "Officer <officer@example.id>").await;
    let there = v.issue("officer", "Other <other@example.id>").await;
    for key in [&here, &there] {
        // Twice: the second may come from memory.
        for _ in 0..2 {
            let who = v.authenticate(&key.token).await.unwrap();
            assert_eq!(who.role(), "officer");
        }
    }

    // Revoked through this vault: refused at once.
    revoke(&v, &here.record.id).await;
    assert!(matches!(
        v.authenticate(&here.token).await,
        Err(Error::Unauthenticated)
    ));
    // The other key is untouched.
    v.authenticate(&there.token).await.unwrap();

    // Revoked by another process (`amanah apikey revoke` beside the server): refused at once
    // too, with nothing in between to tell this vault but the store.
    let other = other_process(&v).await;
    revoke(&other, &there.record.id).await;
    assert!(matches!(
        v.authenticate(&there.token).await,
        Err(Error::Unauthenticated)
    ));
    // A key issued afterwards still works, also from memory.
    let later = v.token("officer").await;
    for _ in 0..2 {
        v.authenticate(&later).await.unwrap();
    }
}

/// On the embedded store the second request with a key does not read the key again: a change
/// made behind the store's back (not a revocation, which moves the epoch) is not seen by the
/// vault that holds the key, and is by a vault that reads it afresh.
#[tokio::test]
async fn the_embedded_store_keeps_a_verified_key_in_memory() {
    let v = vault(Kind::Sqlite).await;
    let token = v.token("officer").await;
    v.authenticate(&token).await.unwrap();
    let conn = rusqlite::Connection::open(v.sqlite_path()).unwrap();
    conn.execute("DELETE FROM api_keys WHERE role = 'officer'", [])
        .unwrap();
    assert_eq!(
        v.authenticate(&token).await.unwrap().role(),
        "officer",
        "held in memory"
    );
    let fresh = other_process(&v).await;
    assert!(matches!(
        fresh.authenticate(&token).await,
        Err(Error::Unauthenticated)
    ));
}

//! A vault over a fresh store, with a manual clock.

use std::ops::Deref;
use std::path::PathBuf;
use std::sync::Arc;

use amanah_crypto::KeyRing;
use amanah_store::Store;
use amanah_vault::{act, Act, IssuedKey, ManualClock, Permit, Principal, Target, Vault};
use time::macros::datetime;
use time::OffsetDateTime;

use crate::{Kind, TestStore};

/// Where every test vault's clock starts.
pub const START: OffsetDateTime = datetime!(2026-11-23 03:00 UTC);

/// A [`Vault`] initialized with a policy over a fresh store of either kind; its clock stands
/// at [`START`] until the test moves it. Dereferences to the vault.
pub struct TestVault {
    pub kind: Kind,
    pub vault: Arc<Vault>,
    pub clock: Arc<ManualClock>,
    pub store: Arc<dyn Store>,
    pub ring: Arc<KeyRing>,
    pub dir: tempfile::TempDir,
    /// The PostgreSQL database's URL, on PostgreSQL.
    pub pg_url: Option<String>,
}

impl Deref for TestVault {
    type Target = Vault;

    fn deref(&self) -> &Vault {
        &self.vault
    }
}

impl TestVault {
    /// A vault under `policy` (a database named `label` on PostgreSQL).
    pub async fn new(kind: Kind, label: &str, policy: &str) -> TestVault {
        let TestStore {
            kind,
            store,
            ring,
            dir,
            pg_url,
            ..
        } = TestStore::open(kind, label).await;
        let clock = Arc::new(ManualClock::new(START));
        let vault = Vault::initialize(store.clone(), ring.clone(), clock.clone(), policy)
            .await
            .unwrap();
        TestVault {
            kind,
            vault: Arc::new(vault),
            clock,
            store,
            ring,
            dir,
            pg_url,
        }
    }

    /// Another vault over the same store, key ring and clock (another process).
    pub async fn reopen(&self) -> Vault {
        Vault::open(self.store.clone(), self.ring.clone(), self.clock.clone())
            .await
            .unwrap()
    }

    /// The SQLite database file (on SQLite).
    pub fn sqlite_path(&self) -> PathBuf {
        self.dir.path().join("amanah.db")
    }

    /// The single integer `sql` selects, read behind the vault's back (see
    /// [`count`](crate::stores::count)).
    pub fn count(&self, sql: &str) -> i64 {
        crate::stores::count(self.kind, &self.sqlite_path(), self.pg_url.as_deref(), sql)
    }

    /// The operator's principal (the command line, acting as admin).
    pub fn admin(&self) -> Principal {
        self.vault.operator()
    }

    /// An API key for `role` issued to `holder`, by the operator.
    pub async fn issue(&self, role: &str, holder: &str) -> IssuedKey {
        let permit = self
            .permit::<act::KeyCreate>(&self.admin(), Target::none())
            .await;
        self.vault
            .create_api_key(&permit, role, role, holder)
            .await
            .unwrap()
    }

    /// The bearer token of a new key for `role`, issued to a person named after it.
    pub async fn token(&self, role: &str) -> String {
        self.issue(role, &format!("{role} <{role}@example.id>"))
            .await
            .token
            .to_string()
    }

    /// A principal of `role`, authenticated from a key issued for it.
    pub async fn principal(&self, role: &str) -> Principal {
        let token = self.token(role).await;
        self.vault.authenticate(&token).await.unwrap()
    }

    /// A permit for `A`, which the decision point must allow.
    pub async fn permit<A: Act>(&self, who: &Principal, target: Target<'_>) -> Permit<A> {
        match self.vault.authorize::<A>(who, target).await {
            Ok(p) => p,
            Err(e) => panic!("{:?} refused to {}: {e}", A::ACTION, who.role()),
        }
    }

    /// The refusal of `A`, which the decision point must refuse.
    pub async fn refusal<A: Act>(&self, who: &Principal, target: Target<'_>) -> amanah_core::Error {
        match self.vault.authorize::<A>(who, target).await {
            Ok(_) => panic!("{:?} allowed to {}", A::ACTION, who.role()),
            Err(e) => e,
        }
    }

    /// Moves the clock on.
    pub fn advance(&self, by: time::Duration) {
        self.clock.advance(by);
    }
}

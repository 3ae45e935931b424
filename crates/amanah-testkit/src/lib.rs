//! Test support for the whole workspace, written once:
//!
//! - [`policies`]: the test policies (files under `policies/`, also read by `amanah-core`'s unit
//!   tests), the shipped presets, and helpers that derive a variant by editing one line;
//! - [`Kind`] and [`on_both_stores!`]: a test written once runs on SQLite and on PostgreSQL;
//! - [`open_store`] / [`TestStore`]: a fresh store of either kind, an SQLite file in a temporary
//!   directory or a database of the test binary's throwaway PostgreSQL cluster
//!   ([`amanah_testpg`], re-exported as [`cluster`] and [`database`]);
//! - [`TestVault`]: a [`Vault`](amanah_vault::Vault) over such a store with a fresh key ring and
//!   a [`ManualClock`](amanah_vault::ManualClock), principals of any role and permits.
//!
//! This crate only serves tests (a dev-dependency; the binary never links it): a failure to set
//! something up panics with the reason.
#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

pub mod policies;
pub mod stores;
mod vault;

pub use amanah_testpg::{cluster, database, Cluster, Options as ClusterOptions};
pub use stores::{open_store, TestStore};
pub use vault::{TestVault, START};

/// The store a test runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Sqlite,
    Postgres,
}

/// Each test, once per store: `on_both_stores!(name, ...)` over `async fn name(kind: Kind)`
/// makes a module `name` with the tests `sqlite` and `postgres`.
#[macro_export]
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                super::$name($crate::Kind::Sqlite).await
            }
            #[tokio::test]
            async fn postgres() {
                super::$name($crate::Kind::Postgres).await
            }
        }
    )*};
}

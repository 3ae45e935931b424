//! A fresh store of either kind.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use amanah_crypto::KeyRing;
use amanah_store::{PgStore, SqliteStore, Store};

use crate::Kind;

/// A new store of `kind` under the audit key of `ring`: the SQLite file `amanah.db` in `dir`,
/// or a fresh database of this test binary's PostgreSQL cluster named after `label` (its URL
/// returned).
pub async fn open_store(
    kind: Kind,
    dir: &Path,
    label: &str,
    ring: &KeyRing,
) -> (Arc<dyn Store>, Option<String>) {
    match kind {
        Kind::Sqlite => (
            Arc::new(SqliteStore::open(&dir.join("amanah.db"), ring.audit_key()).unwrap()),
            None,
        ),
        Kind::Postgres => {
            let url = crate::database(label);
            (
                Arc::new(PgStore::open(&url, ring.audit_key()).await.unwrap()),
                Some(url),
            )
        }
    }
}

/// A fresh store with its own key ring and directory (removed on drop).
pub struct TestStore {
    pub kind: Kind,
    pub store: Arc<dyn Store>,
    pub ring: Arc<KeyRing>,
    pub dir: tempfile::TempDir,
    /// The PostgreSQL database's URL, on PostgreSQL.
    pub pg_url: Option<String>,
}

impl TestStore {
    pub async fn open(kind: Kind, label: &str) -> TestStore {
        let dir = tempfile::tempdir().unwrap();
        let ring = Arc::new(KeyRing::generate().unwrap());
        let (store, pg_url) = open_store(kind, dir.path(), label, &ring).await;
        TestStore {
            kind,
            store,
            ring,
            dir,
            pg_url,
        }
    }

    /// The SQLite database file (on SQLite).
    pub fn sqlite_path(&self) -> PathBuf {
        self.dir.path().join("amanah.db")
    }

    /// See [`count`].
    pub fn count(&self, sql: &str) -> i64 {
        count(self.kind, &self.sqlite_path(), self.pg_url.as_deref(), sql)
    }
}

/// The single integer `sql` selects, read behind the store's back (as someone with database
/// access would). The key store is `amanah_keys` on both: SQLite's key file is attached under
/// that name, as PostgreSQL's schema is called.
pub fn count(kind: Kind, sqlite_path: &Path, pg_url: Option<&str>, sql: &str) -> i64 {
    match (kind, pg_url) {
        (Kind::Postgres, Some(url)) => crate::cluster()
            .query_text(url, sql)
            .unwrap_or_else(|| panic!("no row: {sql}"))
            .parse()
            .unwrap_or_else(|e| panic!("not an integer ({e}): {sql}")),
        _ => {
            let conn = rusqlite::Connection::open_with_flags(
                sqlite_path,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
            )
            .unwrap();
            let keys = amanah_store::key_store_path(sqlite_path);
            conn.execute(
                "ATTACH DATABASE ?1 AS amanah_keys",
                [keys.to_string_lossy()],
            )
            .unwrap();
            conn.query_row(sql, [], |r| r.get(0))
                .unwrap_or_else(|e| panic!("{e}: {sql}"))
        }
    }
}

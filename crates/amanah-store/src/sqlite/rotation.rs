//! SQLite implementation of [`KeyRotationStore`] (data keys in the attached key store).

use amanah_core::audit::{AuditDraft, AuditRecord};
use async_trait::async_trait;
use rusqlite::params;

use super::{all, append, backend, SqliteStore};
use crate::rotation::{kek_count, stored_data_key};
use crate::sql::keys as sql;
use crate::{KeyRotationStore, Rewrap, StoreResult, StoredDataKey};

#[async_trait]
impl KeyRotationStore for SqliteStore {
    async fn data_keys_not_under(
        &self,
        kek: &str,
        after: &str,
        limit: usize,
    ) -> StoreResult<Vec<StoredDataKey>> {
        let (kek, after) = (kek.to_owned(), after.to_owned());
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(move |conn| {
            all(
                conn,
                sql::DATA_KEYS_NOT_UNDER,
                params![kek, after, limit],
                |r| stored_data_key(r),
            )
        })
        .await
    }

    async fn rewrap_data_keys(
        &self,
        rewraps: Vec<Rewrap>,
        audit: AuditDraft,
    ) -> StoreResult<(u64, AuditRecord)> {
        // The key store is written only by the writer, first, from the changes its jobs stage
        // (`commit.rs`): a rewrap is staged when the committed key is still the one read and no
        // earlier job of the batch destroys it, and applied conditionally all the same.
        self.write_with(move |tx, chain| {
            let mut st = tx
                .prepare_cached(
                    "SELECT 1 FROM keys.data_keys
                     WHERE subject_id = ?1 AND kek_id = ?2 AND key_version = ?3",
                )
                .map_err(backend)?;
            let mut n = 0u64;
            for r in &rewraps {
                let current = st
                    .exists(params![
                        r.subject_id,
                        r.from_kek,
                        i64::from(r.wrapped.version)
                    ])
                    .map_err(backend)?;
                if current && !chain.keys.deletes(&r.subject_id) {
                    chain
                        .keys
                        .rewrap(&r.subject_id, &r.from_kek, r.wrapped.version, &r.wrapped);
                    n += 1;
                }
            }
            drop(st);
            Ok((n, append(tx, chain, audit)?))
        })
        .await
    }

    async fn data_keys_per_kek(&self) -> StoreResult<Vec<(String, u64)>> {
        self.read(|conn| all(conn, sql::DATA_KEYS_PER_KEK, [], |r| kek_count(r)))
            .await
    }
}

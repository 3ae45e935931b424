//! PostgreSQL implementation of [`KeyRotationStore`] (data keys in `amanah_keys`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use amanah_core::audit::{AuditDraft, AuditRecord};
use async_trait::async_trait;
use tokio_postgres::Transaction;

use super::{append, limit_i64, Chain, Op, PgStore, Stmts, Tx};
use crate::rotation::{kek_count, stored_data_key};
use crate::sql::keys as sql;
use crate::{KeyRotationStore, Rewrap, StoreError, StoreResult, StoredDataKey};

/// Rewrites each key still as it was read, then appends the batch's audit entry. `updated` is
/// set (not added to), so a retried transaction reports its own count.
pub(super) async fn apply(
    tx: &Transaction<'_>,
    stmts: &mut Stmts,
    chain: &mut Chain<'_>,
    rewraps: &[Rewrap],
    audit: &AuditDraft,
    updated: &AtomicU64,
) -> Result<Vec<AuditRecord>, Tx> {
    let st = stmts.get(tx, sql::REWRAP_DATA_KEY.pg).await?;
    let mut n = 0;
    for r in rewraps {
        let version = i64::from(r.wrapped.version);
        n += tx
            .execute(
                &st,
                &[
                    &r.subject_id,
                    &r.from_kek,
                    &version,
                    &r.wrapped.kek_id,
                    &r.wrapped.ciphertext,
                ],
            )
            .await?;
    }
    updated.store(n, Ordering::Relaxed);
    Ok(vec![append(tx, stmts, chain, audit).await?])
}

#[async_trait]
impl KeyRotationStore for PgStore {
    async fn data_keys_not_under(
        &self,
        kek: &str,
        after: &str,
        limit: usize,
    ) -> StoreResult<Vec<StoredDataKey>> {
        self.all(
            sql::DATA_KEYS_NOT_UNDER,
            &[&kek, &after, &limit_i64(limit)],
            stored_data_key,
        )
        .await
    }

    async fn rewrap_data_keys(
        &self,
        rewraps: Vec<Rewrap>,
        audit: AuditDraft,
    ) -> StoreResult<(u64, AuditRecord)> {
        let updated = Arc::new(AtomicU64::new(0));
        let record = self
            .write_many(Op::RewrapKeys {
                rewraps,
                audit,
                updated: updated.clone(),
            })
            .await?
            .pop()
            .ok_or_else(|| StoreError::Backend("no audit record".into()))?;
        Ok((updated.load(Ordering::Relaxed), record))
    }

    async fn data_keys_per_kek(&self) -> StoreResult<Vec<(String, u64)>> {
        self.all(sql::DATA_KEYS_PER_KEK, &[], kek_count).await
    }
}

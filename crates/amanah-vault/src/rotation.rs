//! Key-encryption-key rotation, the vault's side: count the data keys under each KEK, rewrap a
//! batch of those not under the active KEK, and record the rotation's start and end. Writing the
//! key file and deciding when an old KEK may be retired belong to the caller (the command line),
//! which owns the file; the vault only ever sees the ring it was given (`Vault::replace_keys`).

use amanah_core::{Error, Result};
use amanah_store::Rewrap;

use crate::authz::{act, Permit};
use crate::vault::store_error;
use crate::Vault;

/// What one batch did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RewrapBatch {
    /// Keys found under older KEKs in this page.
    pub scanned: usize,
    /// Keys rewritten under the active KEK (fewer than `scanned` when some were erased or
    /// rewrapped by someone else meanwhile).
    pub rewrapped: u64,
    /// The subject to continue after, or `None` when the page was the last.
    pub next: Option<String>,
}

impl Vault {
    /// How many data keys each key-encryption key wraps (ids and counts only).
    pub async fn data_keys_per_kek(
        &self,
        _permit: &Permit<act::KeksRotate>,
    ) -> Result<Vec<(String, u64)>> {
        self.store.data_keys_per_kek().await.map_err(store_error)
    }

    /// Rewraps up to `limit` data keys not under the active KEK, the first after subject
    /// `after` (`""`: from the start), in one write with one audit entry naming the KEKs and the
    /// count (never a key). Each key is stored only if its row is still as read, so an erasure
    /// or another rewrap in between wins. A key under a KEK the ring does not hold stops the
    /// batch with an error naming the subject and the KEK; nothing of the batch is written.
    pub async fn rewrap_batch(
        &self,
        permit: &Permit<act::KeksRotate>,
        after: &str,
        limit: usize,
    ) -> Result<RewrapBatch> {
        let keys = self.keys();
        let active = keys.active_kek_id().to_owned();
        let page = self
            .store
            .data_keys_not_under(&active, after, limit.max(1))
            .await
            .map_err(store_error)?;
        let scanned = page.len();
        let next = if scanned < limit.max(1) {
            None
        } else {
            page.last().map(|k| k.subject_id.clone())
        };
        if page.is_empty() {
            return Ok(RewrapBatch {
                scanned,
                rewrapped: 0,
                next,
            });
        }
        let mut from = std::collections::BTreeSet::new();
        let mut rewraps = Vec::with_capacity(page.len());
        for k in page {
            metrics::counter!("amanah_crypto_operations_total", "op" => "rewrap").increment(1);
            let wrapped = keys.rewrap(&k.wrapped, &k.subject_id).map_err(|e| {
                tracing::error!(subject = %k.subject_id, kek = %k.wrapped.kek_id, error = %e, "data key does not rewrap");
                Error::Internal(format!(
                    "the data key of subject {} (under {}) does not rewrap: {e}",
                    k.subject_id, k.wrapped.kek_id
                ))
            })?;
            from.insert(k.wrapped.kek_id.clone());
            rewraps.push(Rewrap {
                subject_id: k.subject_id,
                from_kek: k.wrapped.kek_id,
                wrapped,
            });
        }
        let mut draft = permit.draft();
        draft.reason = Some(format!(
            "rewrap of {} data keys from {} to {active}",
            rewraps.len(),
            from.into_iter().collect::<Vec<_>>().join(" ")
        ));
        let (rewrapped, _) = self
            .store
            .rewrap_data_keys(rewraps, draft)
            .await
            .map_err(store_error)?;
        Ok(RewrapBatch {
            scanned,
            rewrapped,
            next,
        })
    }

    /// Records a step of a rotation (started, resumed, paused, finished) in the audit log.
    /// `reason` names KEK ids and counts only.
    pub async fn record_rotation(
        &self,
        permit: &Permit<act::KeksRotate>,
        reason: String,
    ) -> Result<()> {
        let mut draft = permit.draft();
        draft.reason = Some(reason);
        self.record(draft).await
    }
}

//! The storage contract for key-encryption-key rotation: find the data keys still wrapped under
//! an older KEK, store them rewrapped (only if nothing changed them meanwhile), and count the
//! keys under each KEK. Only wrapped keys and KEK ids pass through here, never a clear key.

use amanah_core::audit::{AuditDraft, AuditRecord};
use amanah_crypto::WrappedKey;
use async_trait::async_trait;

use crate::exec::Row;
use crate::StoreResult;

/// One subject's data key as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredDataKey {
    pub subject_id: String,
    pub wrapped: WrappedKey,
}

/// A data key rewrapped: stored only if the row still holds `from_kek` at the same version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rewrap {
    pub subject_id: String,
    pub from_kek: String,
    pub wrapped: WrappedKey,
}

#[async_trait]
pub trait KeyRotationStore: Send + Sync {
    /// Data keys wrapped under any KEK other than `kek`, ordered by subject id, after the subject
    /// `after` (`""`: from the start), at most `limit`.
    async fn data_keys_not_under(
        &self,
        kek: &str,
        after: &str,
        limit: usize,
    ) -> StoreResult<Vec<StoredDataKey>>;
    /// Stores each rewrapped key whose row still holds its `from_kek` and version (a key erased
    /// or rewrapped meanwhile is left as it is), with `audit`, in one transaction. Returns how
    /// many rows were rewritten.
    async fn rewrap_data_keys(
        &self,
        rewraps: Vec<Rewrap>,
        audit: AuditDraft,
    ) -> StoreResult<(u64, AuditRecord)>;
    /// How many data keys each KEK wraps, by KEK id.
    async fn data_keys_per_kek(&self) -> StoreResult<Vec<(String, u64)>>;
}

/// Reads `subject_id, kek_id, key_version, wrapped_key`.
pub(crate) fn stored_data_key(r: &dyn Row) -> StoreResult<StoredDataKey> {
    Ok(StoredDataKey {
        subject_id: r.col(0)?,
        wrapped: WrappedKey {
            kek_id: r.col(1)?,
            version: u32::try_from(r.col::<i64>(2)?).unwrap_or(u32::MAX),
            ciphertext: r.col(3)?,
        },
    })
}

/// Reads `kek_id, COUNT(*)`.
pub(crate) fn kek_count(r: &dyn Row) -> StoreResult<(String, u64)> {
    Ok((r.col(0)?, u64::try_from(r.col::<i64>(1)?).unwrap_or(0)))
}

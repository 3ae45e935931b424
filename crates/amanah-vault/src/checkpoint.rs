//! Anchored audit checkpoints (see `amanah_core::checkpoint`): signing the current head, and
//! verifying the chain against a checkpoint kept outside the store.

use amanah_core::audit::head_mac;
use amanah_core::checkpoint::{compare, Checkpoint, CheckpointError, SignedCheckpoint};
use amanah_core::{Conflict, Error, Result};
use amanah_crypto::checkpoint::PublicKey;

use crate::vault::store_error;
use crate::{act, Permit, Vault, VerifyReport};

/// The outcome of `Vault::verify_against_checkpoint`.
#[derive(Debug)]
pub struct CheckpointVerdict {
    /// The chain on its own (MACs, sequence, signed head).
    pub chain: VerifyReport,
    /// The chain against the checkpoint (signature, then truncation and rollback).
    pub checkpoint: std::result::Result<(), CheckpointError>,
}

impl CheckpointVerdict {
    pub fn ok(&self) -> bool {
        self.chain.ok() && self.checkpoint.is_ok()
    }
}

impl Vault {
    /// The public half of the checkpoint key, which auditors use to check checkpoints.
    pub fn checkpoint_public_key(&self) -> Result<PublicKey> {
        Ok(self
            .keys()
            .checkpoint_key()
            .map_err(|e| Error::Internal(e.to_string()))?
            .public_key())
    }

    /// A signed checkpoint of the chain as it is now. The head is checked against its MAC
    /// first (a missing or altered head is refused, never anchored). Records nothing. Anchoring
    /// the head is part of verifying the log, so it takes the `audit.verify` permit.
    pub async fn checkpoint(&self, _permit: &Permit<act::AuditVerify>) -> Result<SignedCheckpoint> {
        let audit_key = self.keys().audit_key();
        let (seq, hash, mac) = self
            .store
            .audit_head()
            .await
            .map_err(store_error)?
            .ok_or_else(|| {
                Error::Conflict(
                    Conflict::StoreState,
                    "the signed audit head is missing: run `amanah audit verify`".into(),
                )
            })?;
        if mac != head_mac(&audit_key, seq, &hash) {
            return Err(Error::Conflict(
                Conflict::StoreState,
                "the signed audit head does not verify: run `amanah audit verify`".into(),
            ));
        }
        let store_id = self.store.store_id().await.map_err(store_error)?;
        let key = self
            .keys()
            .checkpoint_key()
            .map_err(|e| Error::Internal(e.to_string()))?;
        Ok(Checkpoint::new(seq, hash, self.clock.now_micros(), store_id).sign(&key))
    }

    /// Verifies the whole chain, then the chain against `checkpoint`: its signature (with
    /// `trusted`, or this vault's own public key), then that the chain still holds the entry
    /// the checkpoint saw (fewer entries: truncated or an older log restored; another entry
    /// at its place: rolled back and rewritten). Records nothing.
    pub async fn verify_against_checkpoint(
        &self,
        permit: &Permit<act::AuditVerify>,
        checkpoint: &SignedCheckpoint,
        trusted: Option<&PublicKey>,
    ) -> Result<CheckpointVerdict> {
        let own = self.checkpoint_public_key()?;
        let chain = self.verify_audit(permit).await?;
        let signature = checkpoint.verify_signature(trusted.unwrap_or(&own));
        let outcome = match signature {
            Err(e) => Err(e),
            Ok(()) => {
                let cp = &checkpoint.checkpoint;
                // Only entries the verifier accepted count.
                let hash_at = if cp.seq == 0 || cp.seq > chain.entries {
                    None
                } else {
                    self.store
                        .audit_entries(None, cp.seq - 1, 1)
                        .await
                        .map_err(store_error)?
                        .into_iter()
                        .find(|r| r.seq == cp.seq)
                        .map(|r| r.hash)
                };
                let store_id = self.store.store_id().await.map_err(store_error)?;
                compare(cp, chain.entries, hash_at, store_id.as_deref())
            }
        };
        Ok(CheckpointVerdict {
            chain,
            checkpoint: outcome,
        })
    }
}

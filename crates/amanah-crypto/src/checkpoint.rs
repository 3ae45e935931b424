//! The signing key of audit checkpoints. A checkpoint names the chain's head `(seq, hash)` at a
//! moment and is signed with Ed25519, so that anyone holding only the public key (an auditor,
//! a second site) can check it, and a store rolled back or truncated below a checkpoint is
//! detected even by someone who could rewrite the database and its signed head.
//!
//! The key pair is derived from the root secret (HKDF info `amanah/audit-checkpoint/v1` -> a
//! 32-byte seed), so it needs no storage of its own and never changes.

use aws_lc_rs::signature::{self, Ed25519KeyPair, KeyPair, UnparsedPublicKey};

use crate::{CryptoError, Secret};

/// HKDF info naming the checkpoint key.
pub const CHECKPOINT_KEY_INFO: &str = "amanah/audit-checkpoint/v1";

/// An Ed25519 public key: 32 bytes.
pub type PublicKey = [u8; 32];
/// An Ed25519 signature: 64 bytes.
pub type Signature = [u8; 64];

/// The checkpoint signing key (Ed25519).
pub struct CheckpointKey {
    pair: Ed25519KeyPair,
}

impl CheckpointKey {
    /// Derives the key pair from a root-derived seed. The seed is a [`Secret`] and is zeroized
    /// when it is dropped here.
    pub(crate) fn from_seed(seed: Secret) -> Result<Self, CryptoError> {
        let pair = Ed25519KeyPair::from_seed_unchecked(seed.expose())
            .map_err(|_| CryptoError::KeyRing("the checkpoint key could not be derived".into()))?;
        drop(seed);
        Ok(CheckpointKey { pair })
    }

    pub fn public_key(&self) -> PublicKey {
        let mut out = [0u8; 32];
        out.copy_from_slice(self.pair.public_key().as_ref());
        out
    }

    pub fn sign(&self, message: &[u8]) -> Signature {
        let mut out = [0u8; 64];
        out.copy_from_slice(self.pair.sign(message).as_ref());
        out
    }
}

impl std::fmt::Debug for CheckpointKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "CheckpointKey(public {}, <redacted>)",
            hex::encode(self.public_key())
        )
    }
}

/// Whether `signature` is `public_key`'s signature of `message`. Needs no secret.
pub fn verify(public_key: &PublicKey, message: &[u8], signature: &Signature) -> bool {
    UnparsedPublicKey::new(&signature::ED25519, public_key)
        .verify(message, signature)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::KeyRing;

    #[test]
    fn derived_deterministically_and_verifiable_with_the_public_key_only() {
        let ring = KeyRing::generate().unwrap();
        let key = ring.checkpoint_key().unwrap();
        assert_eq!(
            key.public_key(),
            ring.checkpoint_key().unwrap().public_key()
        );
        let sig = key.sign(b"checkpoint");
        assert!(verify(&key.public_key(), b"checkpoint", &sig));
        assert!(!verify(&key.public_key(), b"checkpoinT", &sig));
        let mut bad = sig;
        bad[10] ^= 1;
        assert!(!verify(&key.public_key(), b"checkpoint", &bad));
        let other = KeyRing::generate().unwrap().checkpoint_key().unwrap();
        assert_ne!(other.public_key(), key.public_key());
        assert!(!verify(&other.public_key(), b"checkpoint", &sig));
        // Debug shows the public key only.
        assert!(format!("{key:?}").contains(&hex::encode(key.public_key())));
    }
}

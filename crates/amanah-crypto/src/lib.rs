//! Amanah's cryptography: the key hierarchy (key ring -> key-encryption keys -> per-subject data
//! keys; a root secret from which blind-index and audit keys are derived), AEAD with associated
//! data binding every ciphertext to its place, streaming encryption of documents ([`stream`]),
//! blind indexes, the audit chain MAC and API tokens.
//! Nothing else in Amanah touches key material; every secret here is zeroized on drop and has a
//! redacted `Debug`.

pub mod audit;
pub mod blind;
pub mod checkpoint;
pub mod digest;
pub mod envelope;
pub mod keyring;
pub mod otp;
pub mod pseudonym;
mod secret;
pub mod stream;
pub mod token;

pub use envelope::{DataKey, WrappedKey};
pub use keyring::KeyRing;
pub use secret::Secret;
pub use stream::{
    ciphertext_len, plaintext_len, ChunkPosition, Decryptor, DocumentContext, DocumentKey,
    Encryptor, Layout,
};

/// Every failure is deliberately uninformative: a caller learns that decryption failed, never why,
/// and no error carries key material or plaintext.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("decryption failed: the ciphertext, its associated data or the key does not match")]
    Decrypt,
    #[error("unknown key-encryption key {0}")]
    UnknownKey(String),
    #[error("the system random generator failed")]
    Random,
    #[error("invalid key ring: {0}")]
    KeyRing(String),
    #[error("the document is too long to encrypt as one stream (over 2^48 bytes)")]
    TooLong,
}

pub(crate) fn random_bytes<const N: usize>() -> Result<[u8; N], CryptoError> {
    let mut out = [0u8; N];
    aws_lc_rs::rand::fill(&mut out).map_err(|_| CryptoError::Random)?;
    Ok(out)
}

//! Envelope encryption. Each subject has its own random data key; it is stored only wrapped
//! (encrypted) under a key-encryption key from the key ring. Destroying the wrapped data key
//! makes every ciphertext of that subject unreadable (crypto-shredding).
//!
//! Both layers use AES-256-GCM with a random 96-bit nonce. The associated data binds a field
//! ciphertext to (subject id, field name, key version) and a wrapped key to (subject id, kek id,
//! key version), so ciphertexts cannot be swapped between rows or fields. A tenant's keys add
//! the tenant id to both (see [`crate::KeyRing::generate_tenant`]).

use aws_lc_rs::aead::{Aad, Nonce, RandomizedNonceKey, AES_256_GCM, NONCE_LEN};

use crate::stream::{Decryptor, DocumentContext, DocumentKey, Encryptor};
use crate::{CryptoError, Secret};

const FORMAT_V1: u8 = 1;
const TAG_LEN: usize = 16;

/// A subject's data key in clear. Exists only in memory, zeroized on drop.
#[derive(Debug)]
pub struct DataKey {
    secret: Secret,
    /// Bumped when a subject's data is re-encrypted under a fresh key.
    pub version: u32,
    /// The tenant whose key ring made it (`None`: the deployment's own organization); part of
    /// every associated data it seals under.
    scope: Option<std::sync::Arc<str>>,
}

/// A data key as stored: encrypted under the key-encryption key `kek_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappedKey {
    pub kek_id: String,
    pub version: u32,
    pub ciphertext: Vec<u8>,
}

impl DataKey {
    pub fn generate(version: u32) -> Result<Self, CryptoError> {
        Ok(DataKey {
            secret: Secret::generate()?,
            version,
            scope: None,
        })
    }

    /// A fresh data key of a tenant (see [`crate::KeyRing::new_data_key`]).
    pub(crate) fn generate_scoped(
        version: u32,
        scope: Option<std::sync::Arc<str>>,
    ) -> Result<Self, CryptoError> {
        Ok(DataKey {
            scope,
            ..DataKey::generate(version)?
        })
    }

    /// Encrypts one field value of `subject`.
    pub fn seal_field(
        &self,
        subject: &str,
        field: &str,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        seal(
            &self.secret,
            &field_aad(self.scope.as_deref(), subject, field, self.version),
            plaintext,
        )
    }

    /// Decrypts one field value; fails if the ciphertext was made for another subject, field or
    /// key version. The plaintext buffer is zeroized when dropped.
    pub fn open_field(
        &self,
        subject: &str,
        field: &str,
        ciphertext: &[u8],
    ) -> Result<zeroize::Zeroizing<Vec<u8>>, CryptoError> {
        open(
            &self.secret,
            &field_aad(self.scope.as_deref(), subject, field, self.version),
            ciphertext,
        )
        .map(zeroize::Zeroizing::new)
    }

    /// Starts encrypting a new document of `subject` (a fresh random salt and nonce prefix, so
    /// a fresh key, per call): see [`crate::stream`].
    pub fn document_encryptor(
        &self,
        context: &DocumentContext<'_>,
    ) -> Result<Encryptor, CryptoError> {
        let header = DocumentKey::fresh_header()?;
        Ok(Encryptor::new(self.document_key(context, &header)?))
    }

    /// Starts decrypting a document made by [`DataKey::document_encryptor`] under the same
    /// context; the header is read from the start of the stream.
    pub fn document_decryptor(&self, context: &DocumentContext<'_>) -> Decryptor {
        Decryptor::new(self.secret.clone(), self.scope.clone(), context)
    }

    /// The key of one document, from the header at the start of its object (at least
    /// [`crate::stream::HEADER_LEN`] bytes; the rest is ignored): it opens single chunks, for
    /// byte ranges. Fails on an unknown format version or a short header.
    pub fn document_key(
        &self,
        context: &DocumentContext<'_>,
        header: &[u8],
    ) -> Result<DocumentKey, CryptoError> {
        DocumentKey::derive(&self.secret, self.scope.as_deref(), context, header)
    }

    /// The key bytes, for tests that build streams by hand.
    #[cfg(test)]
    pub(crate) fn secret_for_tests(&self) -> Secret {
        self.secret.clone()
    }

    pub(crate) fn wrap(
        &self,
        kek_id: &str,
        kek: &Secret,
        subject: &str,
    ) -> Result<WrappedKey, CryptoError> {
        let ciphertext = seal(
            kek,
            &wrap_aad(self.scope.as_deref(), subject, kek_id, self.version),
            self.secret.expose(),
        )?;
        Ok(WrappedKey {
            kek_id: kek_id.to_owned(),
            version: self.version,
            ciphertext,
        })
    }

    pub(crate) fn unwrap(
        wrapped: &WrappedKey,
        kek: &Secret,
        subject: &str,
        scope: Option<std::sync::Arc<str>>,
    ) -> Result<DataKey, CryptoError> {
        let mut bytes = zeroize::Zeroizing::new(open(
            kek,
            &wrap_aad(scope.as_deref(), subject, &wrapped.kek_id, wrapped.version),
            &wrapped.ciphertext,
        )?);
        let key: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| CryptoError::Decrypt)?;
        zeroize::Zeroize::zeroize(&mut *bytes);
        Ok(DataKey {
            secret: Secret::from_bytes(key),
            version: wrapped.version,
            scope,
        })
    }
}

/// Length-prefixed so that no two (subject, field) pairs share an encoding.
/// A tenant's associated data starts with its own label and the tenant id; the deployment's
/// own organization keeps the unscoped form (so its existing ciphertexts stay valid).
fn scoped(aad: &mut Vec<u8>, scope: Option<&str>, unscoped: &[u8], tenant: &[u8]) {
    match scope {
        None => aad.extend_from_slice(unscoped),
        Some(t) => {
            aad.extend_from_slice(tenant);
            push_prefixed(aad, t.as_bytes());
        }
    }
}

fn field_aad(scope: Option<&str>, subject: &str, field: &str, version: u32) -> Vec<u8> {
    let mut aad = Vec::with_capacity(64 + subject.len() + field.len());
    scoped(
        &mut aad,
        scope,
        b"amanah/field/v1",
        b"amanah/tenant-field/v1",
    );
    push_prefixed(&mut aad, subject.as_bytes());
    push_prefixed(&mut aad, field.as_bytes());
    aad.extend_from_slice(&version.to_be_bytes());
    aad
}

fn wrap_aad(scope: Option<&str>, subject: &str, kek_id: &str, version: u32) -> Vec<u8> {
    let mut aad = Vec::with_capacity(64 + subject.len() + kek_id.len());
    scoped(&mut aad, scope, b"amanah/dek/v1", b"amanah/tenant-dek/v1");
    push_prefixed(&mut aad, subject.as_bytes());
    push_prefixed(&mut aad, kek_id.as_bytes());
    aad.extend_from_slice(&version.to_be_bytes());
    aad
}

pub(crate) fn push_prefixed(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// `format byte || nonce || ciphertext || tag`.
pub(crate) fn seal(key: &Secret, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let key =
        RandomizedNonceKey::new(&AES_256_GCM, key.expose()).map_err(|_| CryptoError::Random)?;
    let mut in_out = Vec::with_capacity(plaintext.len() + TAG_LEN);
    in_out.extend_from_slice(plaintext);
    let nonce = key
        .seal_in_place_append_tag(Aad::from(aad), &mut in_out)
        .map_err(|_| CryptoError::Random)?;
    let mut out = Vec::with_capacity(1 + NONCE_LEN + in_out.len());
    out.push(FORMAT_V1);
    out.extend_from_slice(nonce.as_ref());
    out.extend_from_slice(&in_out);
    Ok(out)
}

pub(crate) fn open(key: &Secret, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
    if sealed.len() < 1 + NONCE_LEN + TAG_LEN || sealed[0] != FORMAT_V1 {
        return Err(CryptoError::Decrypt);
    }
    let nonce_bytes: [u8; NONCE_LEN] = sealed[1..1 + NONCE_LEN]
        .try_into()
        .map_err(|_| CryptoError::Decrypt)?;
    let key =
        RandomizedNonceKey::new(&AES_256_GCM, key.expose()).map_err(|_| CryptoError::Decrypt)?;
    let mut in_out = sealed[1 + NONCE_LEN..].to_vec();
    let plain_len = key
        .open_in_place(
            Nonce::assume_unique_for_key(nonce_bytes),
            Aad::from(aad),
            &mut in_out,
        )
        .map_err(|_| CryptoError::Decrypt)?
        .len();
    in_out.truncate(plain_len);
    Ok(in_out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn field_round_trip() {
        let k = DataKey::generate(1).unwrap();
        let ct = k.seal_field("s1", "email", b"a@b.id").unwrap();
        assert_eq!(
            k.open_field("s1", "email", &ct).unwrap().as_slice(),
            b"a@b.id"
        );
    }

    #[test]
    fn ciphertext_bound_to_subject_field_and_version() {
        let k = DataKey::generate(1).unwrap();
        let ct = k.seal_field("s1", "email", b"a@b.id").unwrap();
        assert_eq!(k.open_field("s2", "email", &ct), Err(CryptoError::Decrypt));
        assert_eq!(k.open_field("s1", "phone", &ct), Err(CryptoError::Decrypt));
        let k2 = DataKey {
            secret: k.secret.clone(),
            version: 2,
            scope: None,
        };
        assert_eq!(k2.open_field("s1", "email", &ct), Err(CryptoError::Decrypt));
    }

    #[test]
    fn another_key_cannot_open() {
        let a = DataKey::generate(1).unwrap();
        let b = DataKey::generate(1).unwrap();
        let ct = a.seal_field("s", "f", b"x").unwrap();
        assert_eq!(b.open_field("s", "f", &ct), Err(CryptoError::Decrypt));
    }

    #[test]
    fn wrap_bound_to_subject_and_kek() {
        let kek = Secret::generate().unwrap();
        let dk = DataKey::generate(3).unwrap();
        let w = dk.wrap("kek-1", &kek, "s1").unwrap();
        let back = DataKey::unwrap(&w, &kek, "s1", None).unwrap();
        assert_eq!(back.secret, dk.secret);
        assert_eq!(back.version, 3);
        assert!(DataKey::unwrap(&w, &kek, "s2", None).is_err());
        let mut renamed = w.clone();
        renamed.kek_id = "kek-2".into();
        assert!(DataKey::unwrap(&renamed, &kek, "s1", None).is_err());
        assert!(DataKey::unwrap(&w, &Secret::generate().unwrap(), "s1", None).is_err());
    }

    #[test]
    fn a_field_is_bound_to_its_tenant() {
        let same_bytes = |key: &DataKey, scope: Option<&str>| DataKey {
            secret: key.secret.clone(),
            version: key.version,
            scope: scope.map(Into::into),
        };
        let a = DataKey::generate_scoped(1, Some("a".into())).unwrap();
        let sealed = a.seal_field("s", "email", b"x").unwrap();
        assert_eq!(
            &*same_bytes(&a, Some("a"))
                .open_field("s", "email", &sealed)
                .unwrap(),
            b"x"
        );
        assert!(same_bytes(&a, Some("b"))
            .open_field("s", "email", &sealed)
            .is_err());
        assert!(same_bytes(&a, None)
            .open_field("s", "email", &sealed)
            .is_err());
    }

    #[test]
    fn nonces_differ() {
        let k = DataKey::generate(1).unwrap();
        let a = k.seal_field("s", "f", b"same").unwrap();
        let b = k.seal_field("s", "f", b"same").unwrap();
        assert_ne!(a, b);
    }

    proptest! {
        #[test]
        fn round_trip_any(plain in proptest::collection::vec(any::<u8>(), 0..512),
                          subject in "[a-z0-9-]{1,40}", field in "[a-z_]{1,20}") {
            let k = DataKey::generate(1).unwrap();
            let ct = k.seal_field(&subject, &field, &plain).unwrap();
            prop_assert_eq!(k.open_field(&subject, &field, &ct).unwrap().to_vec(), plain);
        }

        #[test]
        fn any_bit_flip_is_rejected(plain in proptest::collection::vec(any::<u8>(), 0..64), pos in any::<usize>(), bit in 0u8..8) {
            let k = DataKey::generate(1).unwrap();
            let mut ct = k.seal_field("s", "f", &plain).unwrap();
            let i = pos % ct.len();
            ct[i] ^= 1 << bit;
            prop_assert!(k.open_field("s", "f", &ct).is_err());
        }

        #[test]
        fn open_never_panics_on_garbage(garbage in proptest::collection::vec(any::<u8>(), 0..128)) {
            let k = DataKey::generate(1).unwrap();
            let _ = k.open_field("s", "f", &garbage);
        }
    }
}

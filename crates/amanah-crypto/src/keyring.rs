//! The key ring: the vault's master secrets, held in a key file outside the database.
//!
//! - `root`: never rotates; blind-index and audit-chain keys are derived from it, so indexes and
//!   the chain stay valid across key-encryption-key rotation.
//! - `keks`: key-encryption keys that wrap per-subject data keys. Several may exist (old ones
//!   keep unwrapping until every subject is re-wrapped); exactly one is active for new wraps.
//!
//! A hosted organization (a tenant) has a key ring of its own, made by
//! [`KeyRing::generate_tenant`]: its own random root and KEK, so its blind-index terms, audit
//! keys and data keys share nothing with another's. It is stored sealed by the deployment's
//! root ([`KeyRing::seal_tenant`], bound to the tenant id); destroying the sealed copy makes
//! every ciphertext of the tenant unreadable while the deployment's root stays.
//!
//! File format (JSON, mode 0600):
//! `{"format":"amanah-keyring/1","root":"<base64>","active":"<kek id>","keks":{"<kek id>":"<base64>"}}`

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::audit::AuditKey;
use crate::blind::BlindIndexKey;
use crate::checkpoint::CheckpointKey;
use crate::envelope::{DataKey, WrappedKey};
use crate::pseudonym::PseudonymKey;
use crate::{CryptoError, Secret};

const FORMAT: &str = "amanah-keyring/1";

pub struct KeyRing {
    root: Secret,
    active: String,
    keks: BTreeMap<String, Secret>,
    /// The tenant this ring belongs to (`None`: the deployment's own organization). It is
    /// part of every derivation and every associated data the ring's keys use.
    scope: Option<std::sync::Arc<str>>,
}

/// The platform ring's scope (never a tenant's id: those are UUIDs).
const PLATFORM_SCOPE: &str = "platform";

/// The label of a tenant ring sealed under the deployment's root.
const TENANT_RING: &str = "amanah/tenant-ring/v1";

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("active", &self.active)
            .field("keks", &self.keks.keys().collect::<Vec<_>>())
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    format: String,
    root: String,
    active: String,
    keks: BTreeMap<String, String>,
}

impl KeyRing {
    /// A fresh key ring with a new root secret and one active key-encryption key.
    pub fn generate() -> Result<Self, CryptoError> {
        let mut ring = KeyRing {
            root: Secret::generate()?,
            active: String::new(),
            keks: BTreeMap::new(),
            scope: None,
        };
        ring.add_kek()?;
        Ok(ring)
    }

    /// A fresh key ring for the tenant `tenant` (its own root and KEK).
    pub fn generate_tenant(tenant: &str) -> Result<Self, CryptoError> {
        Ok(KeyRing {
            scope: Some(tenant.into()),
            ..KeyRing::generate()?
        })
    }

    /// The platform operator's ring, derived from this (the deployment's) root so that it needs
    /// no storage of its own: its audit chain's keys are unrelated to every organization's.
    /// It wraps no data key (the platform holds no subject).
    pub fn platform(&self) -> Result<KeyRing, CryptoError> {
        const KEK: &str = "kek-platform";
        Ok(KeyRing {
            root: self.root.derive("amanah/platform/root/v1"),
            active: KEK.to_owned(),
            keks: BTreeMap::from([(KEK.to_owned(), self.root.derive("amanah/platform/kek/v1"))]),
            scope: Some(PLATFORM_SCOPE.into()),
        })
    }

    /// The tenant this ring belongs to (`None`: the deployment's own organization).
    pub fn tenant(&self) -> Option<&str> {
        self.scope.as_deref()
    }

    /// Seals a tenant's ring under this (the deployment's) root, bound to the tenant id: the
    /// sealed bytes open only with this root and only as that tenant's.
    pub fn seal_tenant(&self, tenant: &KeyRing) -> Result<Vec<u8>, CryptoError> {
        let id = tenant
            .tenant()
            .ok_or_else(|| CryptoError::KeyRing("not a tenant's key ring".into()))?;
        self.seal_for_tenant(id, "ring", &tenant.to_file_bytes())
    }

    /// Seals a secret of tenant `tenant` (e.g. where its store lives, which may hold a
    /// password) under this root, bound to the tenant and to `what`.
    pub fn seal_for_tenant(
        &self,
        tenant: &str,
        what: &str,
        secret: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        let key = self.root.derive(TENANT_RING);
        crate::envelope::seal(&key, &tenant_aad(tenant, what), secret)
    }

    /// Opens what [`KeyRing::seal_for_tenant`] sealed (zeroized when dropped).
    pub fn open_for_tenant(
        &self,
        tenant: &str,
        what: &str,
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let key = self.root.derive(TENANT_RING);
        crate::envelope::open(&key, &tenant_aad(tenant, what), sealed).map(Zeroizing::new)
    }

    /// Opens a tenant's ring sealed by [`KeyRing::seal_tenant`] under this root.
    pub fn open_tenant(&self, tenant: &str, sealed: &[u8]) -> Result<KeyRing, CryptoError> {
        let bytes = self.open_for_tenant(tenant, "ring", sealed)?;
        Ok(KeyRing {
            scope: Some(tenant.into()),
            ..KeyRing::from_file_bytes(&bytes)?
        })
    }

    /// A fresh data key for a subject of this ring's organization.
    pub fn new_data_key(&self, version: u32) -> Result<DataKey, CryptoError> {
        DataKey::generate_scoped(version, self.scope.clone())
    }

    /// The HKDF label of one use of the root: the tenant id is part of a tenant's.
    fn label(&self, what: &str) -> String {
        match &self.scope {
            None => format!("amanah/{what}"),
            Some(t) => format!("amanah/tenant/{t}/{what}"),
        }
    }

    /// Adds a new key-encryption key and makes it the active one; returns its id. Existing
    /// wrapped keys stay readable with the older keys.
    pub fn add_kek(&mut self) -> Result<String, CryptoError> {
        let id = format!("kek-{}", hex::encode(crate::random_bytes::<6>()?));
        self.keks.insert(id.clone(), Secret::generate()?);
        self.active = id.clone();
        Ok(id)
    }

    /// Whether `other` holds the same root secret (compared in constant time): a reloaded key
    /// file must, or it belongs to another vault.
    pub fn same_root(&self, other: &KeyRing) -> bool {
        aws_lc_rs::constant_time::verify_slices_are_equal(self.root.expose(), other.root.expose())
            .is_ok()
    }

    pub fn active_kek_id(&self) -> &str {
        &self.active
    }

    pub fn kek_ids(&self) -> impl Iterator<Item = &str> {
        self.keks.keys().map(String::as_str)
    }

    /// Wraps a subject's data key under the active key-encryption key.
    pub fn wrap(&self, key: &DataKey, subject: &str) -> Result<WrappedKey, CryptoError> {
        let kek = self
            .keks
            .get(&self.active)
            .ok_or_else(|| CryptoError::UnknownKey(self.active.clone()))?;
        key.wrap(&self.active, kek, subject)
    }

    /// Unwraps a subject's data key with whichever key-encryption key wrapped it.
    pub fn unwrap(&self, wrapped: &WrappedKey, subject: &str) -> Result<DataKey, CryptoError> {
        let kek = self
            .keks
            .get(&wrapped.kek_id)
            .ok_or_else(|| CryptoError::UnknownKey(wrapped.kek_id.clone()))?;
        DataKey::unwrap(wrapped, kek, subject, self.scope.clone())
    }

    /// Re-wraps a subject's data key under the active key-encryption key: unwrapped with the
    /// key that wrapped it, wrapped again with the active one (same key, same version), so every
    /// field ciphertext stays readable. The clear data key exists only inside this call and is
    /// zeroized when it returns. A key already under the active KEK is wrapped afresh too.
    pub fn rewrap(&self, wrapped: &WrappedKey, subject: &str) -> Result<WrappedKey, CryptoError> {
        let key = self.unwrap(wrapped, subject)?;
        self.wrap(&key, subject)
    }

    /// Removes a key-encryption key that no data key uses any more. The active key cannot be
    /// retired; retiring an unknown id is an error (nothing changes either way).
    pub fn retire_kek(&mut self, id: &str) -> Result<(), CryptoError> {
        if id == self.active {
            return Err(CryptoError::KeyRing(format!(
                "{id:?} is the active key-encryption key and cannot be retired"
            )));
        }
        self.keks
            .remove(id)
            .map(drop)
            .ok_or_else(|| CryptoError::UnknownKey(id.to_owned()))
    }

    /// The key-encryption keys other than the active one (those a rotation still has to empty).
    pub fn older_kek_ids(&self) -> Vec<String> {
        self.keks
            .keys()
            .filter(|id| **id != self.active)
            .cloned()
            .collect()
    }

    /// The blind-index key of one category.
    pub fn blind_index_key(&self, category: &str) -> BlindIndexKey {
        BlindIndexKey::new(
            self.root
                .derive(&self.label(&format!("bidx/{category}/v1"))),
        )
    }

    /// The key of the audit chain's MAC.
    pub fn audit_key(&self) -> AuditKey {
        AuditKey::new(self.root.derive(&self.label("audit/v1")))
    }

    /// The Ed25519 key that signs audit checkpoints (its seed is derived from the root and
    /// zeroized once the key pair is built).
    pub fn checkpoint_key(&self) -> Result<CheckpointKey, CryptoError> {
        // The deployment's label is `CHECKPOINT_KEY_INFO` (published checkpoints rely on it).
        CheckpointKey::from_seed(self.root.derive(&self.label("audit-checkpoint/v1")))
    }

    /// The key of per-disclosure pseudonyms.
    pub fn pseudonym_key(&self) -> PseudonymKey {
        PseudonymKey::new(self.root.derive(&self.label("pseudonym/v1")))
    }

    /// Serializes for the key file. The returned buffer is zeroized on drop.
    pub fn to_file_bytes(&self) -> Zeroizing<Vec<u8>> {
        let file = KeyFile {
            format: FORMAT.to_owned(),
            root: B64.encode(self.root.expose()),
            active: self.active.clone(),
            keks: self
                .keks
                .iter()
                .map(|(id, k)| (id.clone(), B64.encode(k.expose())))
                .collect(),
        };
        // Serializing a struct of strings to JSON cannot fail.
        let mut bytes = serde_json::to_vec_pretty(&file).unwrap_or_default();
        bytes.push(b'\n');
        let KeyFile { root, keks, .. } = file;
        drop(Zeroizing::new(root));
        for (_, k) in keks {
            drop(Zeroizing::new(k));
        }
        Zeroizing::new(bytes)
    }

    /// Parses a key file. Errors name the problem, never the key material.
    pub fn from_file_bytes(bytes: &[u8]) -> Result<Self, CryptoError> {
        let file: KeyFile = serde_json::from_slice(bytes)
            .map_err(|e| CryptoError::KeyRing(format!("not a key file ({})", e.classify_str())))?;
        let file = Zeroizing::new(file);
        if file.format != FORMAT {
            return Err(CryptoError::KeyRing(format!(
                "unsupported format {:?}, expected {FORMAT:?}",
                file.format
            )));
        }
        let root = decode_secret(&file.root, "root")?;
        let mut keks = BTreeMap::new();
        for (id, k) in &file.keks {
            keks.insert(id.clone(), decode_secret(k, id)?);
        }
        if !keks.contains_key(&file.active) {
            return Err(CryptoError::KeyRing(format!(
                "active key {:?} is not in the key file",
                file.active
            )));
        }
        Ok(KeyRing {
            root,
            active: file.active.clone(),
            keks,
            scope: None,
        })
    }
}

fn tenant_aad(tenant: &str, what: &str) -> Vec<u8> {
    let mut aad = TENANT_RING.as_bytes().to_vec();
    crate::envelope::push_prefixed(&mut aad, tenant.as_bytes());
    crate::envelope::push_prefixed(&mut aad, what.as_bytes());
    aad
}

impl zeroize::Zeroize for KeyFile {
    fn zeroize(&mut self) {
        self.root.zeroize();
        for v in self.keks.values_mut() {
            v.zeroize();
        }
    }
}

fn decode_secret(b64: &str, name: &str) -> Result<Secret, CryptoError> {
    let bytes = Zeroizing::new(
        B64.decode(b64.trim())
            .map_err(|_| CryptoError::KeyRing(format!("key {name:?} is not valid base64")))?,
    );
    let arr: [u8; 32] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| CryptoError::KeyRing(format!("key {name:?} is not 32 bytes")))?;
    Ok(Secret::from_bytes(arr))
}

trait ClassifyStr {
    fn classify_str(&self) -> &'static str;
}

impl ClassifyStr for serde_json::Error {
    /// The category only: serde_json's message could quote part of the (secret) input.
    fn classify_str(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Io => "read error",
            serde_json::error::Category::Syntax => "invalid JSON",
            serde_json::error::Category::Data => "missing or unexpected keys",
            serde_json::error::Category::Eof => "truncated",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deployment_labels_are_unchanged() {
        let ring = KeyRing::generate().unwrap();
        assert_eq!(
            ring.label("audit-checkpoint/v1"),
            crate::checkpoint::CHECKPOINT_KEY_INFO
        );
        assert_eq!(ring.label("audit/v1"), "amanah/audit/v1");
    }

    #[test]
    fn a_tenant_ring_opens_only_with_its_root_and_its_id() {
        let root = KeyRing::generate().unwrap();
        let tenant = KeyRing::generate_tenant("t-1").unwrap();
        let sealed = root.seal_tenant(&tenant).unwrap();
        let back = root.open_tenant("t-1", &sealed).unwrap();
        assert_eq!(back.tenant(), Some("t-1"));
        assert!(back.same_root(&tenant));
        assert!(root.open_tenant("t-2", &sealed).is_err());
        assert!(KeyRing::generate()
            .unwrap()
            .open_tenant("t-1", &sealed)
            .is_err());
        assert!(root.seal_tenant(&root).is_err());
        let place = root
            .seal_for_tenant("t-1", "placement", b"postgres://x")
            .unwrap();
        assert_eq!(
            &*root.open_for_tenant("t-1", "placement", &place).unwrap(),
            b"postgres://x"
        );
        assert!(root.open_for_tenant("t-1", "ring", &place).is_err());
        assert!(root.open_tenant("t-1", &place).is_err());
        // Keys made by the reopened ring are the tenant's: what one seals, the other opens.
        let dk = tenant.new_data_key(1).unwrap();
        let wrapped = tenant.wrap(&dk, "s").unwrap();
        let field = dk.seal_field("s", "email", b"a@b.id").unwrap();
        let reopened = back.unwrap(&wrapped, "s").unwrap();
        assert_eq!(
            &*reopened.open_field("s", "email", &field).unwrap(),
            b"a@b.id"
        );
    }

    #[test]
    fn the_same_value_gives_unrelated_terms_and_keys_across_tenants() {
        let a = KeyRing::generate_tenant("a").unwrap();
        let b = KeyRing::generate_tenant("b").unwrap();
        let term = |r: &KeyRing| r.blind_index_key("email").index(b"siti@example.id");
        assert_ne!(term(&a), term(&b));
        // A data key moved to another tenant's rows does not open there even under the same
        // KEK bytes: the tenant id is in the associated data.
        let a_twin = KeyRing {
            scope: Some("b".into()),
            ..KeyRing::from_file_bytes(&a.to_file_bytes()).unwrap()
        };
        let dk = a.new_data_key(1).unwrap();
        let wrapped = a.wrap(&dk, "s").unwrap();
        assert!(a_twin.unwrap(&wrapped, "s").is_err());
        // Unscoped keys (the deployment's) do not open a tenant's either.
        let unscoped = KeyRing::from_file_bytes(&a.to_file_bytes()).unwrap();
        assert!(unscoped.unwrap(&wrapped, "s").is_err());
    }

    #[test]
    fn file_round_trip_keeps_every_key() {
        let mut ring = KeyRing::generate().unwrap();
        let dk = DataKey::generate(1).unwrap();
        let old = ring.wrap(&dk, "s").unwrap();
        let new_id = ring.add_kek().unwrap();
        let bytes = ring.to_file_bytes();
        let back = KeyRing::from_file_bytes(&bytes).unwrap();
        assert_eq!(back.active_kek_id(), new_id);
        assert_eq!(back.kek_ids().count(), 2);
        // The old wrap still opens; a new wrap uses the new key.
        let dk2 = back.unwrap(&old, "s").unwrap();
        let ct = dk.seal_field("s", "f", b"v").unwrap();
        assert_eq!(dk2.open_field("s", "f", &ct).unwrap().as_slice(), b"v");
        assert_eq!(back.wrap(&dk, "s").unwrap().kek_id, new_id);
        assert_eq!(
            back.blind_index_key("email").index(b"x"),
            ring.blind_index_key("email").index(b"x")
        );
    }

    #[test]
    fn rewrap_moves_a_key_to_the_active_kek_and_keeps_its_ciphertexts_readable() {
        let mut ring = KeyRing::generate().unwrap();
        let first = ring.active_kek_id().to_owned();
        let dk = DataKey::generate(3).unwrap();
        let ct = dk.seal_field("s1", "email", b"siti@example.id").unwrap();
        let old = ring.wrap(&dk, "s1").unwrap();
        let second = ring.add_kek().unwrap();
        let new = ring.rewrap(&old, "s1").unwrap();
        assert_eq!(old.kek_id, first);
        assert_eq!(new.kek_id, second);
        assert_eq!(new.version, 3, "the data key's version is kept");
        assert_ne!(new.ciphertext, old.ciphertext);
        ring.retire_kek(&first).unwrap();
        assert_eq!(ring.kek_ids().collect::<Vec<_>>(), vec![second.as_str()]);
        // The retired key no longer opens the old wrap; the new wrap opens the same data key.
        assert_eq!(
            ring.unwrap(&old, "s1").unwrap_err(),
            CryptoError::UnknownKey(first.clone())
        );
        let back = ring.unwrap(&new, "s1").unwrap();
        assert_eq!(
            back.open_field("s1", "email", &ct).unwrap().as_slice(),
            b"siti@example.id"
        );
        // Bound to its subject: another subject's id does not rewrap it.
        assert_eq!(ring.rewrap(&new, "s2").unwrap_err(), CryptoError::Decrypt);
        // A rewrapped key claiming another KEK id fails closed (the id is in the AAD).
        let mut relabelled = new.clone();
        relabelled.kek_id = first;
        assert!(ring.rewrap(&relabelled, "s1").is_err());
    }

    #[test]
    fn the_active_kek_cannot_be_retired_and_survives_the_file() {
        let mut ring = KeyRing::generate().unwrap();
        let first = ring.active_kek_id().to_owned();
        assert!(ring.retire_kek(&first).is_err());
        assert!(matches!(
            ring.retire_kek("kek-unknown"),
            Err(CryptoError::UnknownKey(_))
        ));
        let second = ring.add_kek().unwrap();
        assert_eq!(ring.older_kek_ids(), vec![first.clone()]);
        let back = KeyRing::from_file_bytes(&ring.to_file_bytes()).unwrap();
        assert_eq!(back.older_kek_ids(), vec![first.clone()]);
        assert_eq!(back.active_kek_id(), second);
        ring.retire_kek(&first).unwrap();
        assert!(ring.older_kek_ids().is_empty());
        let back = KeyRing::from_file_bytes(&ring.to_file_bytes()).unwrap();
        assert!(back.same_root(&ring));
        assert!(!back.same_root(&KeyRing::generate().unwrap()));
        assert_eq!(back.kek_ids().collect::<Vec<_>>(), vec![second.as_str()]);
    }

    mod prop {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(32))]
            /// Any number of rotations, each followed by a rewrap and the retirement of the
            /// previous key: the data key (and so every field ciphertext) is the same at the end.
            #[test]
            fn prop_rewrap_across_rotations_keeps_the_data_key(
                subject in "[a-z0-9-]{1,40}",
                version in 1u32..1000,
                value in proptest::collection::vec(any::<u8>(), 0..256),
                rotations in 1usize..5,
            ) {
                let mut ring = KeyRing::generate().unwrap();
                let dk = DataKey::generate(version).unwrap();
                let ct = dk.seal_field(&subject, "f", &value).unwrap();
                let mut wrapped = ring.wrap(&dk, &subject).unwrap();
                for _ in 0..rotations {
                    let old = ring.active_kek_id().to_owned();
                    let new = ring.add_kek().unwrap();
                    wrapped = ring.rewrap(&wrapped, &subject).unwrap();
                    prop_assert_eq!(&wrapped.kek_id, &new);
                    prop_assert_eq!(wrapped.version, version);
                    ring.retire_kek(&old).unwrap();
                    ring = KeyRing::from_file_bytes(&ring.to_file_bytes()).unwrap();
                }
                prop_assert_eq!(ring.kek_ids().count(), 1);
                let back = ring.unwrap(&wrapped, &subject).unwrap();
                let plain = back.open_field(&subject, "f", &ct).unwrap();
                prop_assert_eq!(plain.as_slice(), &value[..]);
            }
        }
    }

    #[test]
    fn bad_files_are_rejected_without_echoing_them() {
        let secret_looking =
            br#"{"format":"amanah-keyring/1","root":"SECRETSECRET","active":"a","keks":{}}"#;
        let err = KeyRing::from_file_bytes(secret_looking)
            .unwrap_err()
            .to_string();
        assert!(!err.contains("SECRETSECRET"), "{err}");
        assert!(KeyRing::from_file_bytes(b"{").is_err());
        assert!(KeyRing::from_file_bytes(b"").is_err());
    }

    #[test]
    fn debug_shows_ids_only() {
        let ring = KeyRing::generate().unwrap();
        let shown = format!("{ring:?}");
        assert!(shown.contains(ring.active_kek_id()));
        let bytes = ring.to_file_bytes();
        let file: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        let root = file["root"].as_str().unwrap();
        assert!(!shown.contains(root));
    }
}

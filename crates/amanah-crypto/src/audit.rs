//! The audit chain's MAC. Each entry's hash is `HMAC(audit key, previous hash || entry bytes)`;
//! being keyed, someone who can write to the database but lacks the key ring cannot rebuild a
//! chain after editing it.

use aws_lc_rs::hmac;

use crate::Secret;

/// The `previous hash` of the first entry.
pub const GENESIS: [u8; 32] = [0u8; 32];

#[derive(Clone)]
pub struct AuditKey(hmac::Key);

impl AuditKey {
    pub(crate) fn new(secret: Secret) -> Self {
        AuditKey(hmac::Key::new(hmac::HMAC_SHA256, secret.expose()))
    }

    /// The hash of an entry whose canonical encoding is `entry`, following `previous`.
    pub fn chain(&self, previous: &[u8; 32], entry: &[u8]) -> [u8; 32] {
        let mut ctx = hmac::Context::with_key(&self.0);
        ctx.update(previous);
        ctx.update(entry);
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.sign().as_ref());
        out
    }

    /// Whether `tag` is what [`AuditKey::chain`] gives for `(previous, entry)`, compared in
    /// constant time.
    pub fn verify(&self, previous: &[u8; 32], entry: &[u8], tag: &[u8]) -> bool {
        let mut data = Vec::with_capacity(previous.len() + entry.len());
        data.extend_from_slice(previous);
        data.extend_from_slice(entry);
        hmac::verify(&self.0, &data, tag).is_ok()
    }
}

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::KeyRing;

    #[test]
    fn chain_depends_on_previous_entry_and_key() {
        let ring = KeyRing::generate().unwrap();
        let k = ring.audit_key();
        let h1 = k.chain(&GENESIS, b"one");
        assert_eq!(h1, k.chain(&GENESIS, b"one"));
        assert_ne!(h1, k.chain(&GENESIS, b"two"));
        assert_ne!(k.chain(&h1, b"two"), k.chain(&GENESIS, b"two"));
        let other = KeyRing::generate().unwrap().audit_key();
        assert_ne!(h1, other.chain(&GENESIS, b"one"));
    }

    #[test]
    fn verify_accepts_only_the_tag_chain_gives() {
        let k = KeyRing::generate().unwrap().audit_key();
        let tag = k.chain(&GENESIS, b"row");
        assert!(k.verify(&GENESIS, b"row", &tag));
        assert!(!k.verify(&GENESIS, b"row!", &tag));
        assert!(!k.verify(&GENESIS, b"row", &tag[..31]));
        let other = KeyRing::generate().unwrap().audit_key();
        assert!(!other.verify(&GENESIS, b"row", &tag));
    }
}

//! Per-disclosure pseudonyms: a keyed hash (HMAC-SHA256) of the disclosure id and the subject
//! id, so a recipient gets stable tokens within one disclosure that cannot be linked across
//! disclosures or back to the subject without the vault's key.

use aws_lc_rs::hmac;

use crate::Secret;

pub struct PseudonymKey(hmac::Key);

impl PseudonymKey {
    pub(crate) fn new(secret: Secret) -> Self {
        PseudonymKey(hmac::Key::new(hmac::HMAC_SHA256, secret.expose()))
    }

    /// The pseudonym of `subject` in `disclosure`: `ps-` and 32 hex digits.
    pub fn pseudonym(&self, disclosure: &str, subject: &str) -> String {
        let mut ctx = hmac::Context::with_key(&self.0);
        ctx.update(&(disclosure.len() as u64).to_be_bytes());
        ctx.update(disclosure.as_bytes());
        ctx.update(subject.as_bytes());
        let tag = ctx.sign();
        format!("ps-{}", hex::encode(&tag.as_ref()[..16]))
    }
}

impl std::fmt::Debug for PseudonymKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PseudonymKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use crate::KeyRing;

    #[test]
    fn stable_within_a_disclosure_unlinkable_across() {
        let ring = KeyRing::generate().unwrap();
        let k = ring.pseudonym_key();
        let a = k.pseudonym("d1", "s1");
        assert_eq!(a, ring.pseudonym_key().pseudonym("d1", "s1"));
        assert_eq!(a.len(), 35);
        assert!(!a.contains("s1"));
        assert_ne!(a, k.pseudonym("d2", "s1"));
        assert_ne!(a, k.pseudonym("d1", "s2"));
        // The length prefix keeps ("d1", "2s") and ("d12", "s") apart.
        assert_ne!(k.pseudonym("d1", "2s"), k.pseudonym("d12", "s"));
        let other = KeyRing::generate().unwrap();
        assert_ne!(a, other.pseudonym_key().pseudonym("d1", "s1"));
    }
}

//! Blind indexes: a keyed hash (HMAC-SHA256) of a normalized value, one key per category, so
//! equality search works without storing the value, and equal values in two categories do not
//! match each other.

use aws_lc_rs::hmac;

use crate::Secret;

pub struct BlindIndexKey(hmac::Key);

impl BlindIndexKey {
    pub(crate) fn new(secret: Secret) -> Self {
        BlindIndexKey(hmac::Key::new(hmac::HMAC_SHA256, secret.expose()))
    }

    /// The index term of one normalized value.
    pub fn index(&self, normalized: &[u8]) -> [u8; 32] {
        let tag = hmac::sign(&self.0, normalized);
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        out
    }
}

impl std::fmt::Debug for BlindIndexKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BlindIndexKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use crate::KeyRing;

    #[test]
    fn per_category_and_per_ring() {
        let a = KeyRing::generate().unwrap();
        let b = KeyRing::generate().unwrap();
        let v = b"a@b.id";
        assert_eq!(
            a.blind_index_key("email").index(v),
            a.blind_index_key("email").index(v)
        );
        assert_ne!(
            a.blind_index_key("email").index(v),
            a.blind_index_key("phone").index(v)
        );
        assert_ne!(
            a.blind_index_key("email").index(v),
            b.blind_index_key("email").index(v)
        );
        assert_ne!(
            a.blind_index_key("email").index(v),
            a.blind_index_key("email").index(b"a@b.ie")
        );
    }
}
